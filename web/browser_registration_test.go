package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserWallboardShowsTrunkRegistration: a trunk whose registrar (sipp)
// refuses its REGISTER shows on the supervisor's wallboard as failing to
// register, with the carrier's answer and the next try, and the API says the
// same.
func TestBrowserWallboardShowsTrunkRegistration(t *testing.T) {
	t.Parallel()
	registrar := sipptest.Start(t, "register-refuse.xml", sipptest.Options{})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	o, err := sip.New(context.Background(), sip.Config{
		Trunks: []sip.TrunkConfig{{Name: "carrier", Address: registrar.Addr, Username: "alice", Password: "secret",
			Register: true, RegisterDomain: "carrier.test"}},
		KeepaliveInterval: sip.Duration(time.Hour), // only REGISTERs reach the registrar
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	e := newUIEnv(t, Config{TrunkControl: o, TrunkStatus: func() any { return o.Trunks() }})

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("registration failing", `(() => {
		const r = document.querySelector('#trunks tbody .trunk-reg');
		return r?.dataset.reg === 'failing' && r.textContent.includes('registration failing: register carrier: 403 Forbidden; next try at ')
			&& r.title === 'sip:alice@carrier.test';
	})()`, 10*time.Second)

	trunks := decode[struct {
		Trunks []map[string]any `json:"trunks"`
	}](t, e.get(t, "/api/v1/trunks", e.tokens[storage.RoleSupervisor]), http.StatusOK).Trunks
	if len(trunks) != 1 {
		t.Fatalf("trunks %v, want one", trunks)
	}
	reg, _ := trunks[0]["registration"].(map[string]any)
	if reg["state"] != "failing" || !strings.Contains(reg["last_error"].(string), "403 Forbidden") || reg["next_try_at"] == nil || reg["aor"] != "sip:alice@carrier.test" {
		t.Errorf("API registration %v: want failing with the 403, the next try and the AOR", reg)
	}
}
