package netlab

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a UDP echo inside the carrier
// namespace (NETLAB_ECHO=addr), so the test needs no tool beyond ip.
func TestMain(m *testing.M) {
	if addr := os.Getenv("NETLAB_ECHO"); addr != "" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			os.Exit(3)
		}
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				os.Exit(0)
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}
	os.Exit(m.Run())
}

// TestCutDropsBothWays talks UDP to an echo in the carrier namespace: answered
// before the cut, nothing either way during it (no ICMP either: a closed port
// that refuses before the cut only times out during it), answered after Restore.
func TestCutDropsBothWays(t *testing.T) {
	l := New(t)
	ctx, cancel := context.WithCancel(context.Background())
	echoAddr := net.JoinHostPort(l.CarrierIP, "7007")
	echo := l.Exec(ctx, os.Args[0], "-test.run=^$")
	echo.Env = append(os.Environ(), "NETLAB_ECHO="+echoAddr)

	// exchange sends one datagram to port and returns the reply, or the error.
	exchange := func(port string, within time.Duration) (string, error) {
		t.Helper()
		conn, err := net.Dial("udp", net.JoinHostPort(l.CarrierIP, port))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("ping")); err != nil {
			return "", err
		}
		_ = conn.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 16)
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}
	// First, before any other ICMP (the kernel rate-limits them): a closed port
	// refuses, so the quiet during the cut is the cut's doing.
	if _, err := exchange("9", time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port before the cut: %v, want connection refused (ICMP back)", err)
	}
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = echo.Wait() })
	// The echo may take a moment to bind.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := exchange("7007", 200*time.Millisecond)
		if err == nil && got == "ping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo through the lab before the cut: %q %v", got, err)
		}
	}

	l.Cut()
	if got, err := exchange("7007", 500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("echo during the cut: %q %v, want a timeout", got, err)
	}
	if _, err := exchange("9", 500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("closed port during the cut: %v, want a timeout (no ICMP)", err)
	}

	l.Restore()
	if got, err := exchange("7007", 2*time.Second); err != nil || got != "ping" {
		t.Fatalf("echo after restore: %q %v", got, err)
	}
}
