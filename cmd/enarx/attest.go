package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/shim/attestapi"
)

func runAttest(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("attest", flag.ContinueOnError)
	fs.SetOutput(s.Stderr)
	ns := fs.String("namespace", "default", "containerd `namespace` of the container")
	fs.StringVar(ns, "n", "default", "short for --namespace")
	state := fs.String("state", "/run/containerd", "containerd's state `directory` (its config's `state`)")
	nonce := fs.String("nonce", "", "`hex` nonce to bind into the evidence (at most 64 bytes), e.g. from a verifier's challenge")
	stewardURL := fs.String("steward", "", "get the nonce from the challenge of the attestation service at `URL` (for `enarx verify --steward URL`)")
	stewardCA := fs.String("steward-ca", "", "PEM `file` of the CA an https steward's certificate chains to")
	out := fs.String("o", "", "write the evidence to `file` instead of stdout")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(s.Stderr, "usage: enarx attest [--namespace NS] [--state DIR] [--nonce HEX | --steward URL] [-o FILE] CONTAINER\n\nAsks the running Keep of CONTAINER for fresh evidence with the nonce bound into it, and\nprints it (JSON, docs/attestation.md) for a verifier. Needs access to containerd's state\ndirectory and the shim's socket (root).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("attest takes one container ID")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *stewardURL != "" {
		if *nonce != "" {
			return usagef("--nonce and --steward exclude each other: the steward's challenge is the nonce")
		}
		c, err := newStewardClient(*stewardURL, *stewardCA)
		if err != nil {
			return err
		}
		n, _, err := c.Challenge(ctx)
		if err != nil {
			return err
		}
		*nonce = hex.EncodeToString(n)
	}
	evidence, err := attestapi.Attest(ctx, *state, *ns, fs.Arg(0), *nonce)
	if err != nil {
		return err
	}
	// Check it before handing it on: a verifier would refuse it anyway.
	parsed, err := attestation.ParseEvidence(evidence)
	if err != nil {
		return fmt.Errorf("the Keep answered with invalid evidence: %w", err)
	}
	if err := parsed.CheckBinding(); err != nil {
		return fmt.Errorf("the Keep answered with evidence that does not bind its inputs: %w", err)
	}
	if *out != "" {
		// The canonical bytes only: sha256sum of the file is the digest.
		if err := os.WriteFile(*out, evidence, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(s.Stderr, "%s: %s evidence of %s, %s\n", *out, parsed.TEE, fs.Arg(0), parsed.Digest())
		return nil
	}
	_, err = s.Stdout.Write(append(evidence, '\n'))
	return err
}
