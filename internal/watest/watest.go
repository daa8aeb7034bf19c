// Package watest starts the in-repo WhatsApp Cloud API emulator for tests, with a
// client of it, as the engine's and the WhatsApp channels' tests use them.
package watest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// The emulator's credentials: the client's token and the webhooks' signing secret.
const (
	Token  = "emulated-access-token"
	Secret = "emulated-app-secret"
)

// Templates are the approved templates the tests send: "lembrete" with two body
// parameters (the contact's name and plan) and "pedido_ligacao", a call-permission
// request.
func Templates() []emulator.Template {
	return []emulator.Template{
		{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}, seu plano {{2}} vence em breve."},
		{Name: "pedido_ligacao", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Podemos ligar pelo WhatsApp?", CallPermissionRequest: true},
	}
}

// Start starts an emulator holding Templates, closed when the test ends, and a
// client of it with short retry backoffs, logging to log; opts add to the
// client's options (its media, for calls).
func Start(t testing.TB, log *slog.Logger, opts ...whatsapp.Option) (*emulator.Emulator, *whatsapp.Client) {
	t.Helper()
	emu, err := emulator.Start(context.Background(), emulator.Config{AccessToken: Token, AppSecret: Secret,
		PhoneNumberID: "1000", WABAID: "2000", Logger: log, Templates: Templates()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: Token, PhoneNumberID: "1000",
		WABAID: "2000", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		append([]whatsapp.Option{whatsapp.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return emu, client
}
