// Package netlab builds a small network of Linux network namespaces for tests
// that need a real link cut: packets dropped silently in both directions, no
// ICMP, no RST, as when a carrier's link dies. The topology is
//
//	root namespace (the test) ⇄ ns "router" ⇄ ns "carrier"
//
// on two private /24 subnets (root side and carrier side) in 172.16.0.0/12,
// chosen from the test's name and the process id. [Lab.Cut] installs
// blackhole routes in the router for both subnets (as their two halves, more
// specific than the connected /24s), which then drops what it would forward;
// [Lab.Restore] removes them.
//
// It needs root (CAP_NET_ADMIN) and iproute2's ip: in CI (CI=true) their
// absence fails the test, elsewhere it skips it. Everything is removed at the
// test's cleanup.
package netlab

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/testenv"
)

// Lab is one running topology.
type Lab struct {
	t testing.TB
	// RootIP is the test process's address, on the root namespace's veth.
	RootIP string
	// CarrierIP is the carrier namespace's address.
	CarrierIP string
	// CarrierNS is the carrier namespace's name, for `ip netns exec`.
	CarrierNS string
	routerNS  string
	rootLink  string
	rootNet   string
	carrNet   string
}

// New builds the topology, or ends the test when it cannot (skip outside CI).
func New(t testing.TB) *Lab {
	t.Helper()
	ip := testenv.RequireTool(t, "ip", "iproute2")
	if os.Geteuid() != 0 {
		msg := "netlab needs root (CAP_NET_ADMIN) to create network namespaces"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Names and subnets from the test's name and the pid: parallel tests and
	// test processes get their own, and the rare collision fails loudly (the
	// namespace or route exists) rather than mixing traffic.
	h := fnv.New32a()
	fmt.Fprintf(h, "%d %s", os.Getpid(), t.Name())
	sum := h.Sum32()
	id := fmt.Sprintf("%08x", sum)
	b, c := 16+sum%16, (sum>>4)%128*2
	net := func(third uint32, host int) string { return fmt.Sprintf("172.%d.%d.%d", b, third, host) }
	l := &Lab{
		t:         t,
		RootIP:    net(c, 1),
		CarrierIP: net(c+1, 2),
		CarrierNS: "tbc" + id,
		routerNS:  "tbr" + id,
		rootLink:  "tbv" + id,
		rootNet:   net(c, 0) + "/24",
		carrNet:   net(c+1, 0) + "/24",
	}
	routerRoot := net(c, 2)
	routerCarr := net(c+1, 1)
	t.Cleanup(l.remove)
	steps := [][]string{
		{"netns", "add", l.routerNS},
		{"netns", "add", l.CarrierNS},
		{"-n", l.routerNS, "link", "set", "lo", "up"},
		{"-n", l.CarrierNS, "link", "set", "lo", "up"},
		// root ⇄ router
		{"link", "add", l.rootLink, "type", "veth", "peer", "name", "r0", "netns", l.routerNS},
		{"addr", "add", l.RootIP + "/24", "dev", l.rootLink},
		{"link", "set", l.rootLink, "up"},
		{"-n", l.routerNS, "addr", "add", routerRoot + "/24", "dev", "r0"},
		{"-n", l.routerNS, "link", "set", "r0", "up"},
		// router ⇄ carrier
		{"-n", l.routerNS, "link", "add", "r1", "type", "veth", "peer", "name", "c0", "netns", l.CarrierNS},
		{"-n", l.routerNS, "addr", "add", routerCarr + "/24", "dev", "r1"},
		{"-n", l.routerNS, "link", "set", "r1", "up"},
		{"-n", l.CarrierNS, "addr", "add", l.CarrierIP + "/24", "dev", "c0"},
		{"-n", l.CarrierNS, "link", "set", "c0", "up"},
		{"-n", l.CarrierNS, "route", "add", "default", "via", routerCarr},
		{"route", "add", l.carrNet, "via", routerRoot, "dev", l.rootLink},
	}
	for _, s := range steps {
		if out, err := run(ip, s...); err != nil {
			t.Fatalf("netlab: ip %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	if out, err := run(ip, "netns", "exec", l.routerNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("netlab: enable forwarding in %s: %v\n%s", l.routerNS, err, out)
	}
	return l
}

// Exec returns a command that runs name with args inside the carrier namespace.
// The caller starts it and kills it (CommandContext with the test's context).
func (l *Lab) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.CarrierNS, name}, args...)...)
}

// Cut makes the router drop, silently, everything between the two subnets.
func (l *Lab) Cut() {
	l.t.Helper()
	for _, dst := range l.halves() {
		if out, err := run("ip", "-n", l.routerNS, "route", "add", "blackhole", dst); err != nil {
			l.t.Fatalf("netlab: cut: %v\n%s", err, out)
		}
	}
}

// Restore undoes Cut.
func (l *Lab) Restore() {
	l.t.Helper()
	for _, dst := range l.halves() {
		if out, err := run("ip", "-n", l.routerNS, "route", "del", "blackhole", dst); err != nil {
			l.t.Fatalf("netlab: restore: %v\n%s", err, out)
		}
	}
}

// halves are both subnets as /25s: a blackhole for the /24 itself would clash
// with the router's connected route, a more specific one wins over it.
func (l *Lab) halves() []string {
	var out []string
	for _, n := range []string{l.rootNet, l.carrNet} {
		base := strings.TrimSuffix(n, ".0/24")
		out = append(out, base+".0/25", base+".128/25")
	}
	return out
}

// remove deletes the namespaces (which deletes their veths, and so the root's
// end and route) and, should the namespace be gone already, the root's veth.
func (l *Lab) remove() {
	for _, ns := range []string{l.CarrierNS, l.routerNS} {
		_, _ = run("ip", "netns", "del", ns)
	}
	if _, err := run("ip", "link", "show", l.rootLink); err == nil {
		_, _ = run("ip", "link", "del", l.rootLink)
	}
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
