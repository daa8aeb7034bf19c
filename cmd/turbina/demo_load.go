package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
)

// demoMaxContacts bounds --contacts: the synthetic numbers are +55 11 9xxxx-xxxx
// from 96000-0000 up, which leaves room for forty million.
const demoMaxContacts = 10_000_000

// syntheticContacts returns a CSV list of n contacts in the sample's columns, with
// distinct São Paulo mobile numbers, for load runs that need more than the sample's
// 300 rows. It is imported through the same path as the sample.
func syntheticContacts(n int) []byte {
	plans := [...]string{"Fibra 300", "Fibra 500", "Fibra 1 Giga", "Móvel 20 GB"}
	var b bytes.Buffer
	b.Grow(64 * (n + 1))
	b.WriteString("nome,telefone,plano,valor,vencimento\n")
	for i := range n {
		fmt.Fprintf(&b, "Contato %d,+55 11 9%04d-%04d,%s,\"%d,90\",18/12/2026\n",
			i+1, 6000+i/10000, i%10000, plans[i%len(plans)], 99+i%200)
	}
	return b.Bytes()
}

// checkLoopbackTrunk refuses a --trunk that is not on this machine: the demo dials
// made-up numbers and must never reach a real carrier.
func checkLoopbackTrunk(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port", addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("%q: want a port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("the demo dials made-up numbers: the carrier must be on a loopback address (127.0.0.1)")
	}
	return nil
}

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
// http.DefaultServeMux, which the server does not use).
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
}
