// Command turbina is the Turbina predictive dialer: one binary that serves the API
// (serve), runs a self-contained demonstration (demo), runs the pacing simulator
// (sim) and reports its version (version).
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

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `turbina: predictive dialer with a WhatsApp second engine

Usage:
  turbina serve   [flags]   run the server (API, engine)
  turbina demo    [flags]   run the server with a sample campaign and demo users
  turbina sim     --scenario FILE [--pacer NAME]... [--json]   run the pacing simulator
  turbina version           print the version

Run "turbina COMMAND -h" for a command's flags. Every flag also reads a TURBINA_*
environment variable (see -h); flags win over the environment, which wins over the
config file named by --config / TURBINA_CONFIG.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "turbina:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "sim":
		return runSim(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "turbina %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "turbina: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
