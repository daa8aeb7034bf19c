package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestWallboardHistoryComesFromStorage: calls made while nobody watched (or
// before a restart) are in the charts' history the moment a supervisor opens the
// wallboard.
func TestWallboardHistoryComesFromStorage(t *testing.T) {
	e := newUIEnv(t, Config{})
	ctx := context.Background()
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Histórico", "caller_id": "+551130000000"}), http.StatusCreated)
	e.importCSV(t, c.ID, "phone\n+5511987650001\n+5511987650002\n")
	for i, ct := range e.contacts(t, c.ID, "").Contacts {
		var id int64
		fmt.Sscan(ct.ID, &id)
		a, err := e.db.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		answered := time.Now().Add(-time.Duration(20+i) * time.Minute)
		a.State, a.Outcome, a.AnswerAt, a.EndAt = "ended", []string{"abandoned", "connected"}[i], &answered, &answered
		move := func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(campaigns.DefaultLadder(), c, pos, campaigns.OutcomeEvent(campaigns.Outcome(a.Outcome)), answered)
		}
		if err := e.db.FinishAttempt(ctx, a, move); err != nil {
			t.Fatal(err)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/wallboard/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[storage.RoleSupervisor])
	req.Header.Set("Accept", "text/event-stream")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", res.Status)
	}
	lines := bufio.NewScanner(res.Body)
	lines.Buffer(nil, 1<<22)
	for lines.Scan() && lines.Text() != "event: history" {
	}
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "data: ") {
		t.Fatalf("no history event: %q %v", lines.Text(), lines.Err())
	}
	var history []wallSample
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines.Text(), "data: ")), &history); err != nil {
		t.Fatal(err)
	}
	if len(history) < 350 {
		t.Fatalf("%d samples, want the last hour at 10 s steps", len(history))
	}
	first, last := history[0].Campaigns[c.ID], history[len(history)-1].Campaigns[c.ID]
	if first != (sampleCounts{}) {
		t.Errorf("an hour ago: %+v, want nothing yet", first)
	}
	if want := (sampleCounts{Dials: 2, Answered: 2, Abandoned: 1, Connected: 1}); last != want {
		t.Errorf("now: %+v, want %+v", last, want)
	}
}
