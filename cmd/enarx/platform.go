package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// platformReport is what `enarx platform --json` prints.
type platformReport struct {
	Platform attestation.Platform `json:"platform"`
	Backends []backendReport      `json:"backends"`
	// Policy is the policy the choice was made with, and Chosen the backend
	// a container without an enarx.dev/backend annotation gets under it.
	Policy      nodepolicy.Policy `json:"policy"`
	Chosen      string            `json:"chosen,omitempty"`
	ChoiceError string            `json:"choice_error,omitempty"`
}

type backendReport struct {
	Name      string `json:"name"`
	TEE       string `json:"tee"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// TEEVersion is the TCB/firmware version a report states, when the
	// backend is available and a report could be obtained.
	TEEVersion string `json:"tee_version,omitempty"`
}

func runPlatform(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	fs.SetOutput(s.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	policyPath := fs.String("policy", "", "node policy TOML `file` (as given to the runtime with ConfigPath); default: backend = \"auto\", require_tee = false")
	fs.Usage = func() {
		fmt.Fprintf(s.Stderr, "usage: enarx platform [--json] [--policy FILE]\n\nShows what this node offers Keeps: its TEE (configfs-tsm, guest devices, CPU flags),\nwhich backends can run here and why the others cannot, and the backend a container gets.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("platform takes no arguments")
	}
	policy := nodepolicy.Default()
	if *policyPath != "" {
		var err error
		if policy, err = nodepolicy.Load(*policyPath); err != nil {
			return err
		}
	}
	r := platformReport{Platform: attestation.Detect(), Policy: policy}
	for _, name := range []string{nodepolicy.BackendSEVSNP, nodepolicy.BackendTDX, nodepolicy.BackendNil} {
		b, err := keep.LookupBackend(name)
		if err != nil {
			r.Backends = append(r.Backends, backendReport{Name: name, Reason: err.Error()})
			continue
		}
		br := backendReport{Name: name, TEE: b.TEE()}
		if err := b.Available(); err != nil {
			br.Reason = err.Error()
		} else {
			br.Available = true
			br.TEEVersion = teeVersion(ctx, b)
		}
		r.Backends = append(r.Backends, br)
	}
	if chosen, err := policy.Choose("", keep.Available); err != nil {
		r.ChoiceError = err.Error()
	} else {
		r.Chosen = chosen
	}
	if *asJSON {
		enc := json.NewEncoder(s.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printPlatform(s, r)
	return nil
}

// teeVersion asks an available TEE backend for one report and returns the
// version it states.
func teeVersion(ctx context.Context, b keep.Backend) string {
	if b.TEE() == attestation.TEENone {
		return ""
	}
	p, err := b.Provider()
	if err != nil {
		return "unknown: " + err.Error()
	}
	q, err := p.Attest(ctx, [64]byte{})
	if err != nil {
		return "unknown: " + err.Error()
	}
	return q.TEEVersion
}

func printPlatform(s stdio, r platformReport) {
	p := r.Platform
	out := s.Stdout
	fmt.Fprintln(out, "TEE support on this node")
	switch {
	case p.ConfigfsTSM && p.ConfigfsTSMProvider != "":
		fmt.Fprintf(out, "  configfs-tsm:  %s (provider %s)\n", attestation.ConfigfsTSMReport, p.ConfigfsTSMProvider)
	case p.ConfigfsTSM:
		fmt.Fprintf(out, "  configfs-tsm:  %s (provider unknown: %s)\n", attestation.ConfigfsTSMReport, p.ConfigfsTSMError)
	default:
		fmt.Fprintf(out, "  configfs-tsm:  absent (no %s)\n", attestation.ConfigfsTSMReport)
	}
	fmt.Fprintf(out, "  devices:       %s\n", orNone(p.Devices))
	fmt.Fprintf(out, "  CPU flags:     %s\n", orNone(p.CPUFlags))
	fmt.Fprintln(out, "Keep backends")
	for _, b := range r.Backends {
		switch {
		case b.Available && b.TEE == attestation.TEENone:
			fmt.Fprintf(out, "  %-8s available (not confidential: reports tee=none)\n", b.Name)
		case b.Available && b.TEEVersion != "":
			fmt.Fprintf(out, "  %-8s available, %s\n", b.Name, b.TEEVersion)
		case b.Available:
			fmt.Fprintf(out, "  %-8s available\n", b.Name)
		default:
			fmt.Fprintf(out, "  %-8s unavailable: %s\n", b.Name, b.Reason)
		}
	}
	fmt.Fprintf(out, "With backend = %q, require_tee = %t", r.Policy.Backend, r.Policy.RequireTEE)
	if r.Policy.Source != "" {
		fmt.Fprintf(out, " (%s)", r.Policy.Source)
	}
	if r.ChoiceError != "" {
		fmt.Fprintf(out, ", a container cannot start here: %s\n", r.ChoiceError)
		return
	}
	fmt.Fprintf(out, ", a container runs on: %s\n", r.Chosen)
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, " ")
}
