package sip

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBaresipRegistersWithStoredHA1: an agent's phone secret set through storage
// is kept only as its HA1, and a real phone (baresip) configured with the secret
// registers against it; a phone with another secret does not.
func TestBaresipRegistersWithStoredHA1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	admin := storage.Actor{Username: "admin"}
	const secret = "baresip-secret-4e1d77"
	var ids []int64
	for _, name := range []string{"agent1", "agent2"} {
		u := storage.User{Username: name, Role: storage.RoleAgent}
		if err := store.CreateUser(ctx, admin, &u); err != nil {
			t.Fatal(err)
		}
		if err := store.SetPhoneSecret(ctx, admin, u.ID, "callcentre", secret); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	log := slog.New(slog.NewTextHandler(testenv.LogWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := NewRegistrar(ctx, RegistrarConfig{ListenAddr: "127.0.0.1:0", Realm: "callcentre"}, CredentialsFunc(store.PhoneCredentials), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	good := baresiptest.Start(t, baresiptest.Options{Registrar: r.Addr().String(), User: "agent1", Password: secret})
	waitRegistered(t, r, ids[0], good, 10*time.Second)
	wrong := baresiptest.Start(t, baresiptest.Options{Registrar: r.Addr().String(), User: "agent2", Password: "not-" + secret})
	wrong.WaitUntil(t, 10*time.Second, "get 403 Forbidden for a wrong secret", func() bool { return strings.Contains(wrong.Output(), "403 Forbidden") })
	if b, ok := r.Lookup(ids[1]); ok {
		t.Errorf("a phone with a wrong secret registered: %+v", b)
	}

	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the phone secret in clear", f)
		}
	}
}
