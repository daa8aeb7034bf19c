// Package phonetest starts agents' SIP phones for tests: Turbina's registrar on
// a loopback port and baresip registering with it.
package phonetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/storage"
)

// Registrar starts a registrar configured by cfg on a free loopback port whose
// phone accounts are the given usernames (password "pw-" + username), closed
// at the test's cleanup.
func Registrar(t *testing.T, cfg sip.RegistrarConfig, accounts map[string]int64) *sip.Registrar {
	t.Helper()
	creds := sip.CredentialsFunc(func(_ context.Context, username, realm string) (string, int64, bool, error) {
		id, ok := accounts[username]
		return storage.PhoneHA1(username, realm, "pw-"+username), id, ok, nil
	})
	log := slog.New(slog.NewTextHandler(testenv.LogWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.ListenAddr = "127.0.0.1:0"
	r, err := sip.NewRegistrar(context.Background(), cfg, creds, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Start runs baresip registering username (password "pw-" + username) with
// reg over UDP, and waits until reg holds its binding for agentID.
func Start(t *testing.T, reg *sip.Registrar, username string, agentID int64) *baresiptest.Phone {
	t.Helper()
	phone := baresiptest.Start(t, baresiptest.Options{Registrar: reg.Addr().String(), User: username, Password: "pw-" + username})
	phone.WaitUntil(t, 10*time.Second, "register", func() bool { _, ok := reg.Lookup(agentID); return ok })
	return phone
}
