package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// TestSlowUploadDoesNotBlockWriters: an upload that stalls mid-file holds no write
// lock while it waits, so every other change (here a campaign, as the engine's
// attempt records would be) goes through.
func TestSlowUploadDoesNotBlockWriters(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Slow")
	pr, pw := io.Pipe()
	done := make(chan apiResponse, 1)
	go func() {
		done <- e.do(t, request{method: "POST", path: "/api/v1/campaigns/" + c.ID + "/contacts",
			token: e.tokens[storage.RoleSales], body: pr, contentType: "text/csv", chunked: true})
	}()
	if _, err := io.WriteString(pw, "phone\n11987654321\n11987654322\n"); err != nil {
		t.Fatal(err)
	}
	// The rows above are read and sit in an open batch while the upload stalls.
	time.Sleep(100 * time.Millisecond)
	created := make(chan apiResponse, 1)
	go func() {
		created <- e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales],
			map[string]any{"name": "meanwhile", "caller_id": "+551130000000"})
	}()
	select {
	case r := <-created:
		if r.status != http.StatusCreated {
			t.Fatalf("campaign during a stalled upload: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write waited on a stalled upload")
	}
	io.WriteString(pw, "11987654323\n")
	pw.Close()
	r := <-done
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"imported":3`) {
		t.Fatalf("upload: %v", r)
	}
}
