package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/oci/archive"
)

const packageSynopsis = "[OPTIONS] -o OUT.tar MODULE.wasm [ARGS...]"

var packageDescription = strings.TrimSpace(`
Write an OCI image archive (an OCI image layout in a tar) holding the
WebAssembly core module MODULE.wasm, for ` + "`ctr images import`" + `. ARGS become
the image's default arguments (its Cmd); options go before MODULE.wasm.

The image is named by --name, normalized like docker does ("hello" is
"docker.io/library/hello:latest"). The default name is
"docker.io/library/NAME:latest", NAME being the file name without ".wasm"
(lower-cased, other characters than a-z 0-9 . _ - made "-"),
which is also what a Kubernetes pod's "image: NAME" refers to.

Forms:
  default     one gzip tar layer with the module at ` + oci.DefaultModulePath + ` (mode 0755),
              platform linux/` + archive.DefaultPlatform(false).Architecture + ` (this machine's architecture), so
              containerd 1.6 and 2.x import and unpack it with no flags:
                ctr images import OUT.tar
  --artifact  a wasm artifact: platform ` + oci.WasmOS + `/` + oci.WasmArchitecture + `, an empty root filesystem
              and one layer of --media-type holding the module. containerd
              2.x only, with a platform flag:
                ctr images import --all-platforms OUT.tar
              (or --local --platform ` + oci.WasmOS + `/` + oci.WasmArchitecture + `). containerd 1.6 cannot unpack
              it ("mismatched image rootfs and manifest layers"): use the
              default form there.

The archive is reproducible: the same module and options give the same bytes.`)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func runPackage(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "package", packageSynopsis, packageDescription)
	var (
		artifact    = fs.Bool("artifact", false, "write the wasm artifact form (platform "+oci.WasmOS+"/"+oci.WasmArchitecture+", raw module layer) instead of a tar layer")
		mediaType   = fs.String("media-type", "", "media type of the module layer of --artifact: "+oci.MediaTypeWasm+" (default), "+oci.MediaTypeWasmModule+" or "+oci.MediaTypeWasmComponentLayer)
		platform    = fs.String("platform", "", "image platform OS/ARCH[/VARIANT] (default linux/"+archive.DefaultPlatform(false).Architecture+", or "+oci.WasmOS+"/"+oci.WasmArchitecture+" with --artifact)")
		name        = fs.String("name", "", "image reference (default docker.io/library/NAME:latest, NAME from the module's file name)")
		out         = fs.String("o", "", "the archive to write (required); - for standard output")
		env         stringList
		annotations stringList
	)
	fs.Var(&env, "env", "default environment variable `KEY=VALUE` (repeatable)")
	fs.Var(&annotations, "annotation", "manifest annotation `KEY=VALUE` (repeatable)")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	if *out == "" {
		return usagef("no output given: -o OUT.tar is required")
	}
	if *mediaType != "" && !*artifact {
		return usagef("--media-type applies to --artifact only")
	}
	modulePath := fs.Arg(0)
	opts := archive.PackageOptions{
		ModuleName:     modulePath,
		Name:           *name,
		Artifact:       *artifact,
		LayerMediaType: *mediaType,
		Args:           fs.Args()[1:],
		Env:            env,
	}
	if opts.Name == "" {
		opts.Name = archive.DefaultImageName(modulePath)
	} else if _, err := archive.NormalizeImageName(opts.Name); err != nil {
		return usageError{fmt.Errorf("--name: %w", err)}
	}
	if *platform != "" {
		p, err := parsePlatform(*platform)
		if err != nil {
			return usageError{err}
		}
		opts.Platform = &p
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usagef("--env %q: want KEY=VALUE", kv)
		}
	}
	if len(annotations) > 0 {
		opts.Annotations = map[string]string{}
		for _, kv := range annotations {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--annotation %q: want KEY=VALUE", kv)
			}
			opts.Annotations[k] = v
		}
	}

	module, err := os.ReadFile(modulePath)
	if err != nil {
		return err // *PathError names the file
	}
	opts.Module = module
	var buf bytes.Buffer
	desc, err := archive.WritePackage(ctx, &buf, opts)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := s.Stdout.Write(buf.Bytes())
		return err
	}
	if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(s.Stdout, "%s: %s %s (%s/%s)\n", *out, desc.Annotations[archive.AnnotationImageName],
		desc.Digest, desc.Platform.OS, desc.Platform.Architecture)
	return nil
}

// parsePlatform parses OS/ARCH[/VARIANT].
func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return ocispec.Platform{}, fmt.Errorf("--platform %q: want OS/ARCH or OS/ARCH/VARIANT", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// writeFileAtomic writes data to a temporary file beside name and renames it
// to name, so that a failure leaves no partial archive.
func writeFileAtomic(name string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
