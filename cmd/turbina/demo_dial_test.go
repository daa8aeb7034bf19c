package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/media"
)

// TestDemoDialsAndWhatsAppAbsorbsTheCut runs the headless demo: it dials through the
// simulated carrier, the carrier is cut at 10 s, and the WhatsApp rung takes the
// calls over; the run ends with a JSON summary and exit status 0.
func TestDemoDialsAndWhatsAppAbsorbsTheCut(t *testing.T) {
	if !media.OpusAvailable {
		t.Skip("built without the opus tag (make test builds with it): WhatsApp calls need Opus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--duration", "25s", "--report", "--json", "--cut-trunk-at", "10s")
	cmd.Env = append(os.Environ(), "TURBINA_HTTP_ADDR=127.0.0.1:0", "TURBINA_DATA_DIR="+t.TempDir(), "TURBINA_CONFIG=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("turbina demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	type channel struct{ Attempts, Reached int }
	var rep struct {
		Channels    map[string]channel `json:"channels"`
		AfterCut    map[string]channel `json:"after_cut"`
		Abandoned   int                `json:"abandoned"`
		AbandonRate float64            `json:"abandon_rate"`
		Occupancy   float64            `json:"occupancy"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not one JSON object: %v\n%s", err, stdout.Bytes())
	}
	t.Logf("report: %s", bytes.TrimSpace(stdout.Bytes()))
	for _, ch := range []string{"sip", "whatsapp_call", "whatsapp_template"} {
		if _, ok := rep.Channels[ch]; !ok {
			t.Errorf("report has no channels.%s", ch)
		}
	}
	if sip := rep.Channels["sip"]; sip.Attempts == 0 || sip.Reached == 0 {
		t.Errorf("sip: %+v, want calls placed and reached through the simulated carrier", sip)
	}
	if wa := rep.AfterCut["whatsapp_call"]; wa.Attempts == 0 || wa.Reached == 0 {
		t.Errorf("whatsapp_call after the cut: %+v, want the WhatsApp rung to absorb the calls\nstderr:\n%s", wa, stderr.Bytes())
	}
	if rep.AbandonRate > 0.05 {
		t.Errorf("abandon rate %.3f (%d abandoned), want ≤ 0.05", rep.AbandonRate, rep.Abandoned)
	}
	if rep.Occupancy <= 0 {
		t.Errorf("occupancy %.3f, want agents busy some of the time", rep.Occupancy)
	}
}
