package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

func runReferenceValues(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "reference-values", "[-o FILE] [--version V] [--add] [--measurement TEE:HEX]... BINARY...",
		"Writes the reference values of the runtime binaries given: for each, its version and the\n"+
			"sha256 digest a Keep running it reports as runtime_digest. A verifier maps the digest in\n"+
			"evidence to a runtime version with them; an unknown digest fails verification. `make`\n"+
			"writes bin/"+referenceValuesFile+" for the shim it builds.\n"+
			"With --measurement, the launch measurement of a node image that holds those binaries\n"+
			"(SEV-SNP MEASUREMENT, or TDX MRTD with its expected RTMRs: tdx:MRTD:RTMR0,RTMR1,RTMR2,RTMR3,\n"+
			"an empty one unchecked), as given; a TDX image that measures the runtimes it starts into\n"+
			"RTMR3 at run time (configfs-tsm) ends it with :rtmr3 and leaves RTMR3 empty:\n"+
			"tdx:MRTD:RTMR0,RTMR1,RTMR2,:rtmr3. This build does not compute one from the image's\n"+
			"firmware, kernel, initrd and command line (no maintained Go library does; the\n"+
			"platform's tools do, e.g. virtee's sev-snp-measure). A verifier establishes a\n"+
			"runtime's integrity only when the evidence's measurement is one listed for it.")
	out := fs.String("o", "", "write to `file` instead of stdout")
	ver := fs.String("version", version, "runtime `version` of the binaries (default: this enarx's)")
	add := fs.Bool("add", false, "add to the entries already in the -o file instead of replacing them")
	var measurements []string
	fs.Func("measurement", "the launch measurement (`TEE:HEX`) of a node image holding the binaries; repeatable", func(v string) error {
		measurements = append(measurements, v)
		return nil
	})
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give at least one runtime binary, e.g. bin/enarx-keep")
	}
	if *add && *out == "" {
		return usagef("--add needs -o FILE")
	}
	ref := &verify.ReferenceValues{}
	if *add {
		existing, err := verify.LoadReferenceValues(*out)
		switch {
		case err == nil:
			ref = existing
		case errors.Is(err, os.ErrNotExist):
		default:
			return err
		}
	}
	var digests []string
	for _, bin := range fs.Args() {
		digest, err := verify.FileDigest(bin)
		if err != nil {
			return err
		}
		if err := ref.Add(filepath.Base(bin), *ver, digest); err != nil {
			return err
		}
		digests = append(digests, digest)
	}
	for _, m := range measurements {
		mm, err := verify.ParseMeasurement(m, digests)
		if err != nil {
			return usagef("--measurement: %v", err)
		}
		if err := ref.AddMeasurement(mm); err != nil {
			return err
		}
	}
	b, err := ref.Marshal()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = s.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(s.Stderr, "%s: %d runtime(s), %d launch measurement(s)\n", *out, len(ref.Runtimes), len(ref.Measurements))
	return nil
}
