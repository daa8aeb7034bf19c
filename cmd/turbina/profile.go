package main

import (
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

const (
	// blockProfileRate samples one blocking event per this much time blocked:
	// coarse enough that sampling costs little under a benchmark's load.
	blockProfileRate = 10 * time.Microsecond
	// mutexProfileFraction samples one contended lock in this many.
	mutexProfileFraction = 10
)

// startCPUProfile starts writing a CPU profile to path; stop ends it and closes
// the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeHeapProfile writes a heap profile to path after a garbage collection, so its
// in-use figures are what is still reachable.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// handlePprof serves the runtime profiles under /debug/pprof/ on mux (not on
// http.DefaultServeMux, which the server does not use), and turns on the block
// and mutex profiles, which the runtime leaves empty until asked: a lock or a
// channel waited on across a database round trip shows there, not in the CPU
// profile.
func handlePprof(mux *http.ServeMux) {
	runtime.SetBlockProfileRate(int(blockProfileRate.Nanoseconds()))
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
}
