package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
)

// baresipOriginator starts an originator on cfg whose carrier is baresip, with
// the patience baresip needs on a loaded machine, once baresip is ready.
func baresipOriginator(t *testing.T, carrier *baresiptest.Phone, cfg Config) *Originator {
	t.Helper()
	cfg.InviteTimeout = Duration(3 * time.Second)
	cfg.SuspectAfter = Duration(time.Second)
	cfg.RingTimeout = Duration(10 * time.Second)
	o := newTestOriginator(t, cfg)
	// baresip's SIP socket opens a moment after it starts.
	carrier.WaitUntil(t, 10*time.Second, "start", func() bool {
		return strings.Contains(carrier.Output(), "baresip is ready")
	})
	return o
}
