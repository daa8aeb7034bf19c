package demo

import (
	"bytes"
	"errors"
	"fmt"
	"net"
)

// MaxContacts bounds SyntheticContacts: the synthetic numbers are +55 11 9xxxx-xxxx
// from 96000-0000 up, which leaves room for forty million.
const MaxContacts = 10_000_000

// SyntheticContacts returns a CSV list of n contacts in the sample's columns, with
// distinct São Paulo mobile numbers, for load runs that need more than the sample's
// 300 rows. It is imported through the same path as the sample.
func SyntheticContacts(n int) []byte {
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

// CheckLoopbackTrunk refuses a trunk address that is not on this machine: the demo dials
// made-up numbers and must never reach a real carrier.
func CheckLoopbackTrunk(addr string) error {
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
