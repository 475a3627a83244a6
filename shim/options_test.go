package shim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// containerdOptions marshals o the way containerd does (client.WithRuntime
// and the task service use typeurl), giving the bare type URL.
func containerdOptions(t *testing.T, o proto.Message) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// googleOptions marshals o with anypb, giving "type.googleapis.com/...".
func googleOptions(t *testing.T, o proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRuntimeOptionsTypeURL(t *testing.T) {
	// What containerd 1.6 and 2.x put in CreateTaskRequest.Options.
	a := containerdOptions(t, &runtimeoptions.Options{ConfigPath: "/x"})
	if a.GetTypeUrl() != "runtimeoptions.v1.Options" || runtimeOptionsName != a.GetTypeUrl() {
		t.Fatalf("containerd's type URL is %q, policyFromOptions expects %q", a.GetTypeUrl(), runtimeOptionsName)
	}
}

func TestPolicyFromOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(file, []byte("backend = \"tdx\"\nrequire_tee = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badFile, []byte("backend = \"tdx\"\nrequire_tee = maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// containerd 2.x's CRI plugin: the runtime's options table, marshalled
	// to TOML (internal/cri/config.GenerateRuntimeOptions).
	criBody, err := toml.Marshal(map[string]any{"backend": "sev-snp", "require_tee": true, "TypeUrl": "enarx.policy"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		opts *anypb.Any
		want nodepolicy.Policy
		errs []string // substrings of the error; none means success
	}{
		{name: "nil", opts: nil, want: nodepolicy.Default()},
		{name: "empty Any", opts: &anypb.Any{}, want: nodepolicy.Default()},
		{name: "empty runtimeoptions", opts: containerdOptions(t, &runtimeoptions.Options{}), want: nodepolicy.Default()},
		{name: "ctr --runtime-config-path", opts: containerdOptions(t, &runtimeoptions.Options{ConfigPath: file}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendTDX, RequireTEE: true, Source: file}},
		{name: "type.googleapis.com prefix", opts: googleOptions(t, &runtimeoptions.Options{ConfigPath: file}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendTDX, RequireTEE: true, Source: file}},
		{name: "CRI ConfigBody", opts: containerdOptions(t, &runtimeoptions.Options{ConfigBody: criBody}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendSEVSNP, RequireTEE: true, Source: configBodySource}},
		{name: "ConfigBody with prefix", opts: googleOptions(t, &runtimeoptions.Options{ConfigBody: []byte("backend = \"nil\"\n")}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendNil, Source: configBodySource}},
		{name: "ConfigPath wins over ConfigBody", opts: containerdOptions(t, &runtimeoptions.Options{ConfigPath: file, ConfigBody: []byte("backend = \"nil\"\n")}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendTDX, RequireTEE: true, Source: file}},
		{name: "TypeUrl field is ignored", opts: containerdOptions(t, &runtimeoptions.Options{TypeUrl: "anything", ConfigPath: file}),
			want: nodepolicy.Policy{Backend: nodepolicy.BackendTDX, RequireTEE: true, Source: file}},

		{name: "missing file", opts: containerdOptions(t, &runtimeoptions.Options{ConfigPath: filepath.Join(dir, "missing.toml")}),
			errs: []string{"missing.toml", "no such file"}},
		{name: "relative path", opts: containerdOptions(t, &runtimeoptions.Options{ConfigPath: "policy.toml"}),
			errs: []string{`"policy.toml"`, "absolute path", "--runtime-config-path"}},
		{name: "malformed file", opts: containerdOptions(t, &runtimeoptions.Options{ConfigPath: badFile}),
			errs: []string{badFile, "line 2, column 15"}},
		{name: "malformed body", opts: containerdOptions(t, &runtimeoptions.Options{ConfigBody: []byte("backend = \"tdx\"\n\nrequire_tee = [\n")}),
			errs: []string{configBodySource, "line 3"}},
		{name: "unknown key in body", opts: containerdOptions(t, &runtimeoptions.Options{ConfigBody: []byte("backend = \"tdx\"\nSystemdCgroup = true\n")}),
			errs: []string{`unknown setting "SystemdCgroup" (line 2, column 1)`, "backend, require_tee, module_cache, compile_memory_limit, default_steward and [stewards.NAME]"}},
		{name: "invalid backend in body", opts: containerdOptions(t, &runtimeoptions.Options{ConfigBody: []byte("backend = \"sgx\"\n")}),
			errs: []string{configBodySource, `backend = "sgx" is not a backend`}},
		// ctr run --uidmap: the stdio's owner in runc's options, 2.x's and
		// 1.6's (fields 10 and 11 of runctypes.CreateOptions).
		{name: "runc options naming the stdio's owner", opts: containerdOptions(t, &runcoptions.Options{IoUid: 100000, IoGid: 100000}), want: nodepolicy.Default()},
		{name: "1.6 runc create options naming the stdio's owner",
			opts: &anypb.Any{TypeUrl: "containerd.linux.runc.CreateOptions", Value: []byte{10 << 3, 0xa0, 0x8d, 0x06, 11 << 3, 0xa0, 0x8d, 0x06}}, want: nodepolicy.Default()},
		{name: "runc options", opts: containerdOptions(t, &runcoptions.Options{IoUid: 1000, SystemdCgroup: true}),
			errs: []string{`"containerd.runc.v1.Options"`, "runtimeoptions.v1.Options", "--runtime-config-path"}},
		{name: "1.6 runc create options with more", opts: &anypb.Any{TypeUrl: "containerd.linux.runc.CreateOptions", Value: []byte{1 << 3, 1, 10 << 3, 1}},
			errs: []string{`"containerd.linux.runc.CreateOptions"`}},
		{name: "other type with prefix", opts: googleOptions(t, &anypb.Any{}),
			errs: []string{`"type.googleapis.com/google.protobuf.Any"`, "runtimeoptions.v1.Options"}},
		{name: "value without type", opts: &anypb.Any{Value: []byte{1}}, errs: []string{`type ""`}},
		{name: "undecodable value", opts: &anypb.Any{TypeUrl: runtimeOptionsName, Value: []byte{0xff}},
			errs: []string{"runtime options (runtimeoptions.v1.Options)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policyFromOptions(tc.opts)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("policyFromOptions: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("policyFromOptions = %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("policyFromOptions = %+v, want an error", got)
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestPolicyFromOptionsWraps(t *testing.T) {
	_, err := policyFromOptions(containerdOptions(t, &runtimeoptions.Options{ConfigPath: filepath.Join(t.TempDir(), "none.toml")}))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v does not wrap os.ErrNotExist", err)
	}
	_, err = policyFromOptions(containerdOptions(t, &runtimeoptions.Options{ConfigBody: []byte("x = \n")}))
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v does not wrap a *toml.DecodeError", err)
	}
}
