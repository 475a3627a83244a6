package launcher

import (
	"errors"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The messages the launcher exchanges with containerd, in their wire form:
// the bootstrap protocol's BootstrapParams and BootstrapResult (containerd's
// api/runtime/bootstrap/v1), the RuntimeInfo of -info (api/types) and the
// task API's DeleteResponse. They are encoded and decoded here with protowire,
// not through their generated Go packages: those register their descriptors,
// and the packages they import theirs (image-spec, go-digest's regular
// expressions, descriptorpb), each time a process starts, which took the
// launcher from 6 to 13 ms of CPU and from 218 to 374 page faults on the CI
// machine class; containerd runs it twice per container and waits for it.
// The tests check every message against the generated packages, and
// FuzzBootstrapParams the decoding against proto.Unmarshal.

// Field numbers of the messages, from their .proto files.
const (
	// BootstrapParams.
	paramsInstanceID             protowire.Number = 1
	paramsNamespace              protowire.Number = 2
	paramsLogLevel               protowire.Number = 3
	paramsContainerdVersion      protowire.Number = 4
	paramsContainerdTtrpcAddress protowire.Number = 5
	paramsContainerdGrpcAddress  protowire.Number = 6
	paramsContainerdBinary       protowire.Number = 7
	paramsExtensions             protowire.Number = 8
	paramsSocketDir              protowire.Number = 9

	// BootstrapResult.
	resultVersion    protowire.Number = 1
	resultAddress    protowire.Number = 2
	resultProtocol   protowire.Number = 3
	resultExtensions protowire.Number = 6

	// Extension (value) and google.protobuf.Any (type_url, value).
	extensionValue protowire.Number = 1
	anyTypeURL     protowire.Number = 1
	anyValue       protowire.Number = 2

	// RuntimeInfo (name, version) and RuntimeVersion (version, revision).
	infoName        protowire.Number = 1
	infoVersion     protowire.Number = 2
	versionVersion  protowire.Number = 1
	versionRevision protowire.Number = 2

	// DeleteResponse (v2 and v3 alike) and google.protobuf.Timestamp.
	deletePid        protowire.Number = 1
	deleteExitStatus protowire.Number = 2
	deleteExitedAt   protowire.Number = 3
	timestampSeconds protowire.Number = 1
	timestampNanos   protowire.Number = 2
)

// bootstrapVersion is the version of the bootstrap protocol the launcher
// answers in, and mountCapabilitiesURL the type of the extension that says
// which mounts the shim performs (an empty MountCapabilities: none).
const (
	bootstrapVersion     = 3
	mountCapabilitiesURL = "type.googleapis.com/containerd.types.MountCapabilities"
)

// bootstrapParams is what the launcher uses of containerd 2.x's
// BootstrapParams.
type bootstrapParams struct {
	InstanceID             string
	Namespace              string
	ContainerdTtrpcAddress string
	ContainerdGrpcAddress  string
	// SocketDir is nil when containerd did not set it.
	SocketDir *string
}

// errWire is the error for bytes that proto.Unmarshal would refuse: a
// BootstrapParams, a ttrpc answer.
var errWire = errors.New("malformed protobuf message")

// parseBootstrapParams decodes a BootstrapParams as proto.Unmarshal does:
// the last of a repeated singular field wins, a field of an unexpected wire
// type and an unknown field are skipped, and malformed bytes or a string
// that is not UTF-8 (proto3) make it fail, in nested messages too.
func parseBootstrapParams(b []byte) (*bootstrapParams, error) {
	var p bootstrapParams
	err := walk(b, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) error {
		if typ != protowire.BytesType {
			return nil // log_level (a varint), or not this message's
		}
		switch num {
		case paramsInstanceID, paramsNamespace, paramsContainerdVersion, paramsContainerdTtrpcAddress,
			paramsContainerdGrpcAddress, paramsContainerdBinary, paramsSocketDir:
			if !utf8.Valid(v) {
				return errWire
			}
		case paramsExtensions:
			return checkExtension(v)
		}
		s := string(v)
		switch num {
		case paramsInstanceID:
			p.InstanceID = s
		case paramsNamespace:
			p.Namespace = s
		case paramsContainerdTtrpcAddress:
			p.ContainerdTtrpcAddress = s
		case paramsContainerdGrpcAddress:
			p.ContainerdGrpcAddress = s
		case paramsSocketDir:
			p.SocketDir = &s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// checkExtension checks an Extension, which holds an Any, as
// proto.Unmarshal would.
func checkExtension(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) error {
		if num != extensionValue || typ != protowire.BytesType {
			return nil
		}
		return walk(v, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) error {
			if num == anyTypeURL && typ == protowire.BytesType && !utf8.Valid(v) {
				return errWire
			}
			return nil
		})
	})
}

// walk calls field for each field of the message b: its number, wire type,
// value when a varint, and bytes when length-delimited. It fails on
// malformed bytes, or with field's error.
func walk(b []byte, field func(protowire.Number, protowire.Type, uint64, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		var x uint64
		var v []byte
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if err := field(num, typ, x, v); err != nil {
			return err
		}
	}
	return nil
}

// bootstrapResult is the BootstrapResult of a shim at address that speaks
// ttrpc and performs no mounts (the mount manager does them all), which
// also spares containerd a `shim -info` on every create.
func bootstrapResult(address string) []byte {
	var b []byte
	b = appendVarint(b, resultVersion, bootstrapVersion)
	b = appendString(b, resultAddress, address)
	b = appendString(b, resultProtocol, "ttrpc")
	return appendMessage(b, resultExtensions, appendMessage(nil, extensionValue, appendString(nil, anyTypeURL, mountCapabilitiesURL)))
}

// runtimeInfo is the RuntimeInfo of -info: the runtime's name and version.
func runtimeInfo(name, version, revision string) []byte {
	b := appendString(nil, infoName, name)
	return appendMessage(b, infoVersion, appendString(appendString(nil, versionVersion, version), versionRevision, revision))
}

// DeleteResponse is the wire form of the task API's DeleteResponse, which
// `shim delete` writes on stdout.
func DeleteResponse(pid, status uint32, exitedAt time.Time) []byte {
	b := appendVarint(nil, deletePid, uint64(pid))
	b = appendVarint(b, deleteExitStatus, uint64(status))
	// A Timestamp's seconds are an int64, its nanos an int32: negative
	// ones (before 1970) are their two's complement, as varints.
	ts := appendVarint(nil, timestampSeconds, uint64(exitedAt.Unix()))
	ts = appendVarint(ts, timestampNanos, uint64(int64(exitedAt.Nanosecond())))
	return appendMessage(b, deleteExitedAt, ts)
}

// appendVarint appends field num, a varint, unless v is 0 (proto3 omits
// default values).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// appendString appends field num, a string, unless it is empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// appendMessage appends field num, a message encoded as m, even empty (a
// message field is present or not, whatever it holds).
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
}
