package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitRefused = 3
)

const usage = `brook: tools for brook applications

Usage:
  brook reset --application-id <id> [flags]   reset an application to process its input again with empty state
  brook help [command]                        show help

Run "brook reset -h" for the reset flags; see docs/OPERATIONS.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name), writing
// results to stdout and errors to stderr, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "reset":
		return exitStatus(runReset(ctx, args[1:], stdout, stderr, getenv), stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[1] == "reset" {
			fs, _ := resetFlags(io.Discard)
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "brook: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

// exitStatus prints err (if any) and maps it to the exit status.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if !ue.printed {
			fmt.Fprintf(stderr, "brook reset: %v\nRun \"brook reset -h\" for the flags.\n", ue.msg)
		}
		return exitUsage
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "brook reset: %v\n", err)
	if refused(err) {
		return exitRefused
	}
	return exitError
}
