// Package enarxdev names the enarx.dev/* keys: the container labels the
// shim sets from what a Keep reported, and the OCI annotations with which a
// container asks for things.
//
// The keys are a contract with everything outside the shim: `ctr containers
// info` and the /enarx/attestation event show the labels, relying parties
// and the enarx CLI read them, and pod specs and `ctr run --annotation` set
// the annotations. This package is a leaf on purpose: it imports nothing,
// so that any package and any client (the CLI, the tests, a relying party)
// can name the keys without linking the runtime.
//
// Two keys are both a label and an annotation: enarx.dev/backend and
// enarx.dev/steward. The annotation is what the container asked for, and
// may be absent; the label is what its Keep got once the node policy
// decided: the backend the Keep runs in, the Steward that certified it.
// Both names exist so that code says which of the two it means.
package enarxdev

// Prefix is the prefix of every key. The containerd configurations in
// deploy/containerd pass the annotations to the shim by it
// (pod_annotations = ["enarx.dev/*"]).
const Prefix = "enarx.dev/"

// Container labels the shim sets from what the Keep reports.
const (
	LabelTEE            = "enarx.dev/tee"
	LabelBackend        = "enarx.dev/backend"
	LabelAttestation    = "enarx.dev/attestation"
	LabelRuntimeVersion = "enarx.dev/runtime.version"
	LabelWorkloadDigest = "enarx.dev/workload.digest"
	LabelEngine         = "enarx.dev/engine"
	LabelTEEVersion     = "enarx.dev/tee.version"
	LabelRuntimeDigest  = "enarx.dev/runtime.digest"
	LabelEvidenceDigest = "enarx.dev/evidence.digest"
	LabelEvidencePath   = "enarx.dev/evidence.path"
	// The certificate a Steward issued to the Keep, when one is configured:
	// its serial number (hex), end of validity (RFC 3339), issuer, the
	// Steward's URL and the file holding the PEM chain.
	LabelCertificateSerial   = "enarx.dev/certificate.serial"
	LabelCertificateNotAfter = "enarx.dev/certificate.not-after"
	LabelCertificateIssuer   = "enarx.dev/certificate.issuer"
	LabelCertificatePath     = "enarx.dev/certificate.path"
	LabelSteward             = "enarx.dev/steward"
	// The Keep's sockets, "NAME KIND PROT ADDRESS" joined by ", ", and the
	// certificate its TLS sockets present: "steward", or "self-signed" when
	// no Steward certified the Keep.
	LabelSockets     = "enarx.dev/sockets"
	LabelTLSIdentity = "enarx.dev/tls.identity"
)

// AnnotationBackend is the OCI annotation with which a container asks for a
// backend. It can ask for a stronger backend than the node's default, never
// for a weaker one than the node policy requires. It is the key of
// LabelBackend: the annotation is the request, the label the backend the
// Keep got.
const AnnotationBackend = "enarx.dev/backend"

// AnnotationSteward is the OCI annotation with which a container chooses,
// by name, one of the attestation services the node policy lists for its
// Keep to get a certificate from (see nodepolicy.Policy.ChooseSteward);
// never a URL. It is the key of LabelSteward: the annotation is the
// request, the label the URL of the Steward that certified the Keep.
const AnnotationSteward = "enarx.dev/steward"

// The socket annotations declare sockets without an Enarx.toml, e.g. in a
// Kubernetes pod spec (containerd's CRI passes annotations that its runtime
// config lists in pod_annotations / container_annotations):
//
//	enarx.dev/listen.https: tls://[::]:8443
//	enarx.dev/connect.db:   tcp://db.example:5432
//
// The key's suffix is the socket's name in FD_NAMES; the value is prot
// ("tls" or "tcp"), then the address to listen on or the host to connect
// to, with its port. An annotation replaces the Enarx.toml socket of the
// same name; the others come after the Enarx.toml sockets, by name.
const (
	AnnotationListenPrefix  = "enarx.dev/listen."
	AnnotationConnectPrefix = "enarx.dev/connect."
)

// AnnotationInstances is the OCI annotation with which a container whose
// workload allows it runs several instances of it in its Keep, each on a
// thread of its own, e.g.
//
//	enarx.dev/instances: "2"
//
// A WebAssembly instance runs on one thread, so one instance of a server
// uses one core however many connections it has; N instances share its
// listen sockets, each taking connections from the same queue, as the
// worker processes of a pre-forking server do. They share nothing else:
// each has its own linear memory (a memory limit is split between them),
// and a workload that keeps state in memory sees N separate states, which
// is why it is the container's choice. From 1 (the default) to 64; a
// workload with a connect socket, one connection that N instances cannot
// share, runs one. The Keep ends with the first instance that fails (with
// its status) or once all have exited 0.
const AnnotationInstances = "enarx.dev/instances"
