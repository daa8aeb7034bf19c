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
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx := signalled(sigs, func() { signal.Stop(sigs) })
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "turbina:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

// signalled returns a context that ends at the first signal on sigs, when a
// server drains (it places no new call and lets the calls under way end), and
// carries one that ends at the second (stopNow), when it stops at once. Then
// release is called: a third signal is the system's own, which kills.
func signalled(sigs <-chan os.Signal, release func()) context.Context {
	drain, startDrain := context.WithCancel(context.Background())
	now, stop := context.WithCancel(context.Background())
	go func() {
		<-sigs
		startDrain()
		<-sigs
		stop()
		release()
	}()
	return withStopNow(drain, now)
}

// stopNowKey carries, in a command's context, the context whose end stops the
// server at once, cutting its drain short.
type stopNowKey struct{}

// withStopNow returns ctx carrying now as its stopNow.
func withStopNow(ctx, now context.Context) context.Context {
	return context.WithValue(ctx, stopNowKey{}, now)
}

// stopNow is the context whose end stops the server at once: the one ctx
// carries, or ctx itself when it carries none (the server then does not
// drain: the end of ctx stops it, as a test that cancels it expects).
func stopNow(ctx context.Context) context.Context {
	if now, ok := ctx.Value(stopNowKey{}).(context.Context); ok {
		return now
	}
	return ctx
}

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
