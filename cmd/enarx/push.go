package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"testing/fstest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	orasoci "oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/oci/archive"
)

const pushSynopsis = "[OPTIONS] ARCHIVE|MODULE.wasm REF"

var pushDescription = strings.TrimSpace(`
Publish a packaged module to an OCI registry as image REF, for
` + "`ctr images pull`" + `, the CRI or any registry client.

The input is either an image archive written by ` + "`enarx package`" + ` (either
form; the archive must hold one image) or a WebAssembly module, which is
packaged on the fly as ` + "`enarx package`" + ` would (--artifact selects the form).

REF is normalized like docker does ("hello" is "docker.io/library/hello:latest");
it names a tag, not a digest. On success the full reference and the digest of
the pushed manifest are printed: "REF sha256:...".

The registry is spoken to over HTTPS. A registry without TLS, such as one on
127.0.0.1:5000, needs --plain-http: it is never assumed, not even for a
loopback address. --insecure accepts a registry's certificate unchecked.

Credentials: --username with the password on standard input
(--password-stdin), or else those of ` + "`docker login`" + ` (the docker config file,
$DOCKER_CONFIG/config.json or ~/.docker/config.json, and its credential
helpers).

Progress goes to standard error: a bar on a terminal, a line per blob otherwise.

containerd pulls the default form with ` + "`ctr images pull [--plain-http] REF`" + `, and
the artifact form (2.x only) with ` + "`ctr images pull --local --platform " + oci.WasmOS + "/" + oci.WasmArchitecture + " REF`" + `.`)

func runPush(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "push", pushSynopsis, pushDescription)
	var (
		plainHTTP     = fs.Bool("plain-http", false, "speak plain HTTP to the registry, not HTTPS")
		insecure      = fs.Bool("insecure", false, "accept the registry's TLS certificate without verifying it")
		username      = fs.String("username", "", "user name for the registry (with --password-stdin)")
		passwordStdin = fs.Bool("password-stdin", false, "read the registry password from standard input")
		artifact      = fs.Bool("artifact", false, "for a .wasm input: push the wasm artifact form (see: enarx help package)")
		mediaType     = fs.String("media-type", "", "for a .wasm input with --artifact: media type of the module layer")
	)
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() < 2:
		return usagef("want ARCHIVE|MODULE.wasm and REF")
	case fs.NArg() > 2:
		return usagef("unexpected argument %q", fs.Arg(2))
	case *username != "" && !*passwordStdin:
		return usagef("--username needs --password-stdin (the password is never a flag)")
	case *passwordStdin && *username == "":
		return usagef("--password-stdin needs --username")
	case *mediaType != "" && !*artifact:
		return usagef("--media-type applies to --artifact only")
	}
	input, refArg := fs.Arg(0), fs.Arg(1)
	named, err := archive.NormalizeImageName(refArg)
	if err != nil {
		return usageError{fmt.Errorf("REF: %w", err)}
	}
	ref, err := registry.ParseReference(named.String())
	if err != nil {
		return usageError{fmt.Errorf("REF %q: %w", refArg, err)}
	}

	var cred auth.CredentialFunc
	if *username != "" {
		if s.Stdin == nil {
			return errors.New("--password-stdin: no standard input")
		}
		pw, err := io.ReadAll(io.LimitReader(s.Stdin, 1<<16))
		if err != nil {
			return fmt.Errorf("--password-stdin: %w", err)
		}
		password := strings.TrimRight(string(pw), "\r\n")
		if password == "" {
			return errors.New("--password-stdin: the password on standard input is empty")
		}
		cred = auth.StaticCredential(ref.Registry, auth.Credential{Username: *username, Password: password})
	} else {
		store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return fmt.Errorf("reading the docker credentials: %w (fix the file, or give --username and --password-stdin)", err)
		}
		cred = credentials.Credential(store)
	}

	data, err := os.ReadFile(input)
	if err != nil {
		return err // *PathError names the file
	}
	var src *pushSource
	if bytes.HasPrefix(data, []byte("\x00asm")) || strings.HasSuffix(input, ".wasm") {
		src, err = packageModule(ctx, input, data, named.String(), *artifact, *mediaType)
	} else {
		if *artifact || *mediaType != "" {
			return usagef("--artifact and --media-type apply to a .wasm input, and %s is not one: its form was chosen by `enarx package`", input)
		}
		src, err = readArchive(ctx, input, data)
	}
	if err != nil {
		return err
	}

	repo, err := remote.NewRepository(ref.String())
	if err != nil {
		return usageError{fmt.Errorf("REF %q: %w", refArg, err)}
	}
	if repo.Reference.Registry == "docker.io" {
		repo.Reference.Registry = "registry-1.docker.io" // where docker.io is served
	}
	repo.PlainHTTP = *plainHTTP
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if *insecure {
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: transport},
		Header:     http.Header{"User-Agent": {"enarx/" + version}},
		Cache:      auth.NewCache(),
		Credential: cred,
	}

	prog := newProgress(s.Stderr, src.size)
	opts := oras.DefaultCopyOptions
	opts.PreCopy = func(ctx context.Context, d ocispec.Descriptor) error { prog.start(d); return nil }
	opts.PostCopy = func(ctx context.Context, d ocispec.Descriptor) error { prog.done(d, "pushed"); return nil }
	opts.OnCopySkipped = func(ctx context.Context, d ocispec.Descriptor) error { prog.done(d, "exists"); return nil }
	desc, err := oras.Copy(ctx, countingTarget{src.store, prog}, src.root.Digest.String(), repo, ref.Reference, opts)
	if err == nil && prog.count() == 0 {
		// The registry had the manifest already: oras reports no blob.
		prog.done(src.root, "exists")
	}
	prog.finish(err == nil)
	if err != nil {
		return pushError(input, named.String(), ref.Registry, err)
	}
	fmt.Fprintf(s.Stdout, "%s %s\n", named.String(), desc.Digest)
	return nil
}

// pushSource is the image to push: a read-only OCI layout and its manifest.
type pushSource struct {
	store *orasoci.ReadOnlyStore
	root  ocispec.Descriptor
	size  int64 // the bytes of all its blobs
}

// packageModule packages module (from the file name) as `enarx package`
// would, in memory, naming the image ref.
func packageModule(ctx context.Context, name string, module []byte, ref string, artifact bool, mediaType string) (*pushSource, error) {
	var buf bytes.Buffer
	if _, err := archive.WritePackage(ctx, &buf, archive.PackageOptions{
		Module:         module,
		ModuleName:     name,
		Name:           ref,
		Artifact:       artifact,
		LayerMediaType: mediaType,
	}); err != nil {
		return nil, err
	}
	return readArchive(ctx, name, buf.Bytes())
}

// notArchive is the advice given with an input that is not an image archive.
const notArchive = "want an image archive from `enarx package` (an OCI image layout in a tar) or a WebAssembly module"

// readArchive reads an OCI image layout tar (data, from the file name) that
// holds one image.
func readArchive(ctx context.Context, name string, data []byte) (*pushSource, error) {
	files := fstest.MapFS{}
	var size int64
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not an image archive (%v): %s", name, err, notArchive)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		p := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if !fs.ValidPath(p) {
			return nil, fmt.Errorf("%s: bad file name %q in the archive", name, hdr.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, hdr.Name, err)
		}
		files[p] = &fstest.MapFile{Data: b, Mode: 0o444}
		if strings.HasPrefix(p, ocispec.ImageBlobsDir+"/") {
			size += int64(len(b))
		}
	}
	indexFile, ok := files[ocispec.ImageIndexFile]
	if _, layout := files[ocispec.ImageLayoutFile]; !ok || !layout {
		return nil, fmt.Errorf("%s: not an image archive (no %s or %s in it): %s", name, ocispec.ImageLayoutFile, ocispec.ImageIndexFile, notArchive)
	}
	var index ocispec.Index
	if err := json.Unmarshal(indexFile.Data, &index); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, ocispec.ImageIndexFile, err)
	}
	if n := len(index.Manifests); n != 1 {
		return nil, fmt.Errorf("%s: the archive holds %d images, want one (`enarx package` writes one per archive)", name, n)
	}
	store, err := orasoci.NewFromFS(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid image archive: %w", name, err)
	}
	return &pushSource{store: store, root: index.Manifests[0], size: size}, nil
}

// pushError explains a failed push and how to fix it.
func pushError(input, ref, host string, err error) error {
	var resp *errcode.ErrorResponse
	var tlsRecord tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("pushing %s to %s: authentication to %s failed: %w\n"+
			"give credentials with --username USER --password-stdin, or log in with `docker login %s`", input, ref, host, err, host)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("pushing %s to %s: %w\nthe registry %s speaks plain HTTP: add --plain-http", input, ref, err, host)
	case errors.As(err, &tlsRecord):
		return fmt.Errorf("pushing %s to %s: %w\nthe registry %s does not speak TLS: add --plain-http", input, ref, err, host)
	case errors.As(err, &certErr):
		return fmt.Errorf("pushing %s to %s: %w\nthe certificate of %s is not trusted: install its CA, or add --insecure", input, ref, err, host)
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &netErr):
		return fmt.Errorf("pushing %s to %s: registry %s unreachable: %w\ncheck the address and that the registry is running (one without TLS needs --plain-http)", input, ref, host, err)
	}
	return fmt.Errorf("pushing %s to %s: %w", input, ref, err)
}
