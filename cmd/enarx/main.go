// Command enarx is the developer tool of containerd-shim-enarx: it runs
// WebAssembly modules in local Keeps and packages them as OCI images that
// containerd runs through the shim.
//
// Usage:
//
//	enarx COMMAND [OPTIONS] [ARGS...]
//
// Run `enarx help` for the list of commands and `enarx help COMMAND` for one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is the tool's version, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

// A command is a subcommand of enarx.
type command struct {
	// Name is the word after "enarx".
	Name string
	// Summary is the one-line description `enarx help` lists.
	Summary string
	// Run runs the command with the arguments after its name. It returns a
	// usageError for bad arguments (exit status 2), any other error for a
	// failure (exit status 1), flag.ErrHelp after printing help for -h
	// (exit status 0), or an exitError for a status of its own.
	Run func(ctx context.Context, io stdio, args []string) error
}

// stdio are the streams a command writes to.
type stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// commands are the subcommands of enarx. To add one, write its Run function in
// a file of its own and add an entry here; `enarx help` lists them in this
// order.
// (The table is filled in init because `help` reads it.)
var commands []command

func init() {
	commands = []command{
		{Name: "run", Summary: "run a .wasm module in a Keep on this machine, without containerd", Run: runRun},
		{Name: "package", Summary: "turn a .wasm module into an OCI image archive for `ctr images import`", Run: runPackage},
		{Name: "push", Summary: "publish a packaged module (an archive from `enarx package`, or a .wasm) to an OCI registry", Run: runPush},
		{Name: "attest", Summary: "get fresh evidence, with a nonce bound into it, from a running Keep", Run: runAttest},
		{Name: "verify", Summary: "verify a Keep's evidence and print what it proves: the TEE, the runtime, the workload", Run: runVerify},
		{Name: "steward", Summary: "run the attestation service: challenges, signed attestation results, Keep certificates", Run: runSteward},
		{Name: "reference-values", Summary: "write the reference values (runtime version -> digest) of runtime binaries", Run: runReferenceValues},
		{Name: "platform", Summary: "show what this node offers Keeps: its TEE and the backends that can run here", Run: runPlatform},
		{Name: "version", Summary: "print the version of enarx", Run: runVersion},
		{Name: "help", Summary: "show the commands, or the usage of one", Run: runHelp},
	}
}

// usageError is an error in how a command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	// SIGINT and SIGTERM cancel the command's context with the signal as
	// the cause (interrupted), which `enarx run` passes on to its Keep.
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		cancel(interrupted{sig.(syscall.Signal)})
	}()
	code := run(ctx, stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
	signal.Stop(signals)
	cancel(nil)
	os.Exit(code)
}

// run runs enarx with args (without the program name) and returns the exit
// status.
func run(ctx context.Context, s stdio, args []string) int {
	if len(args) == 0 {
		printUsage(s.Stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printUsage(s.Stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(s.Stderr, "enarx: unknown command %q; run `enarx help` for the list\n", name)
		return 2
	}
	err := cmd.Run(ctx, s, args[1:])
	var usage usageError
	var exit exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, &usage):
		fmt.Fprintf(s.Stderr, "enarx %s: %v\nrun `enarx help %s` for usage\n", cmd.Name, err, cmd.Name)
		return 2
	default:
		fmt.Fprintf(s.Stderr, "enarx %s: %v\n", cmd.Name, err)
		return 1
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return command{}, false
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "enarx %s: run WebAssembly in containerd through containerd-shim-enarx\n\n", version)
	fmt.Fprintf(w, "Usage:\n  enarx COMMAND [OPTIONS] [ARGS...]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-17s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun `enarx help COMMAND` or `enarx COMMAND -h` for the options of a command.\n")
}

// newFlagSet returns the FlagSet of a command, whose Usage prints a synopsis
// line, a description and the flags.
func newFlagSet(s stdio, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("enarx "+name, flag.ContinueOnError)
	fs.SetOutput(s.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage:\n  enarx %s %s\n\n%s\n", name, synopsis, description)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nOptions:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args with fs: for -h it prints the usage on stdout and
// returns flag.ErrHelp; for a bad flag it returns a usageError, which run
// reports.
func parseFlags(s stdio, fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(s.Stdout)
		fs.Usage()
		return flag.ErrHelp
	default:
		return usageError{err}
	}
}

func runVersion(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "version", "", "Print the version of enarx.")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintf(s.Stdout, "enarx %s\n", version)
	return nil
}

func runHelp(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "help", "[COMMAND]", "Show the commands of enarx, or the usage of COMMAND.")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		printUsage(s.Stdout)
		return nil
	case 1:
		c, ok := lookup(fs.Arg(0))
		if !ok {
			return usagef("unknown command %q", fs.Arg(0))
		}
		if c.Name == "help" {
			fs.SetOutput(s.Stdout)
			fs.Usage()
			return nil
		}
		return c.Run(ctx, s, []string{"-h"})
	default:
		return usagef("too many arguments")
	}
}
