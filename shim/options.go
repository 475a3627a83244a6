package shim

import (
	"fmt"
	"path/filepath"
	"strings"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// runtimeOptionsName is the full protobuf name of containerd's options for
// runtimes other than runc, "runtimeoptions.v1.Options". containerd (1.6 and
// 2.x alike) sends it as the bare type URL, without "type.googleapis.com/".
var runtimeOptionsName = string(proto.MessageName(&runtimeoptions.Options{}))

// configBodySource names a policy containerd passed inline, in error
// messages.
const configBodySource = "the runtime's options in containerd's config (ConfigBody)"

// policyFromOptions returns the node policy in the runtime options of a
// CreateTaskRequest:
//
//   - none (nil, or an empty Any): DefaultPolicy;
//   - runtimeoptions.v1.Options with a ConfigPath (ctr run
//     --runtime-config-path FILE, or ConfigPath in the runtime's options in
//     containerd's config): the TOML file there, which must be absolute;
//   - runtimeoptions.v1.Options with a ConfigBody (containerd 2.x's CRI
//     plugin passes the runtime's whole options table as TOML when it sets
//     no ConfigPath): that document;
//   - runtimeoptions.v1.Options with neither: DefaultPolicy;
//   - any other type: an error.
//
// ConfigPath takes precedence over ConfigBody, as runtimeoptions.v1
// documents; containerd never sends both. The type URL may carry any
// prefix ending in "/" (such as "type.googleapis.com/").
func policyFromOptions(opts *anypb.Any) (nodepolicy.Policy, error) {
	if opts == nil || (opts.GetTypeUrl() == "" && len(opts.GetValue()) == 0) {
		return nodepolicy.Default(), nil
	}
	typeURL := opts.GetTypeUrl()
	name := typeURL[strings.LastIndex(typeURL, "/")+1:]
	if onlyIOOwner(name, opts.GetValue()) {
		// ctr run --uidmap (Docker's userns-remap alike) names the owner of
		// the stdio FIFOs in runc's options, for a process in a user
		// namespace to open them. A Keep gets its stdio as descriptors
		// from the shim, whatever the owner: nothing else is asked.
		return nodepolicy.Default(), nil
	}
	if name != runtimeOptionsName {
		return nodepolicy.Policy{}, fmt.Errorf("runtime options of type %q are not understood by the enarx runtime: it takes %s, "+
			"i.e. a node policy file (ctr run --runtime-config-path /etc/enarx/policy.toml, or ConfigPath in the options of the enarx runtime in containerd's config) "+
			"or the policy's settings (backend, require_tee) in those options; options for runc do not apply to it",
			typeURL, runtimeOptionsName)
	}
	var ro runtimeoptions.Options
	if err := proto.Unmarshal(opts.GetValue(), &ro); err != nil {
		return nodepolicy.Policy{}, fmt.Errorf("runtime options (%s): %w: containerd sends them from the options of the enarx runtime in its config; check them there", typeURL, err)
	}
	switch {
	case ro.GetConfigPath() != "":
		path := ro.GetConfigPath()
		if !filepath.IsAbs(path) {
			return nodepolicy.Policy{}, fmt.Errorf("enarx node policy %q: the path is relative, and the shim does not run in the directory it is relative to: give an absolute path (ctr run --runtime-config-path /etc/enarx/policy.toml)", path)
		}
		return nodepolicy.Load(path)
	case len(ro.GetConfigBody()) > 0:
		return nodepolicy.Parse(configBodySource, ro.GetConfigBody())
	default:
		return nodepolicy.Default(), nil
	}
}

// Options of runc's that name the owner of a task's stdio (IoUid, IoGid):
// containerd 2.x's runc options, and containerd 1.6's for other runtimes
// (runctypes.CreateOptions, whose Go type containerd 2 no longer has; its
// io_uid and io_gid are fields 10 and 11).
var (
	runcOptionsName   = string(proto.MessageName(&runcoptions.Options{}))
	runcCreateOptions = "containerd.linux.runc.CreateOptions"
)

// onlyIOOwner reports whether value, of the message type name, is runc's
// options with nothing set but the stdio's owner.
func onlyIOOwner(name string, value []byte) bool {
	switch name {
	case runcOptionsName:
		var o runcoptions.Options
		if proto.Unmarshal(value, &o) != nil {
			return false
		}
		o.IoUid, o.IoGid = 0, 0
		return proto.Equal(&o, &runcoptions.Options{})
	case runcCreateOptions:
		for len(value) > 0 {
			num, typ, n := protowire.ConsumeTag(value)
			if n < 0 || typ != protowire.VarintType || (num != 10 && num != 11) {
				return false
			}
			value = value[n:]
			if n = protowire.ConsumeFieldValue(num, typ, value); n < 0 {
				return false
			}
			value = value[n:]
		}
		return true
	}
	return false
}
