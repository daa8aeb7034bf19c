package emulator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// TestUserCallGivesCallbackPermission: with the number's callback permission
// on (callback_permission_status ENABLED), a user's call to the business gives
// it temporary permission, 7 days, as Meta documents: a call_permission_reply
// webhook "accept" from the automatic source, in reply to the call, and the
// call_permissions state temporary. With it off, a call gives none.
func TestUserCallGivesCallbackPermission(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("callback_permission_%v", on), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var mu sync.Mutex
			var events []whatsapp.Event
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				evs, err := whatsapp.ParseWebhook(body)
				if err != nil {
					t.Errorf("webhook %s: %v", body, err)
				}
				mu.Lock()
				defer mu.Unlock()
				events = append(events, evs...)
			}))
			t.Cleanup(recv.Close)
			e, err := emulator.Start(ctx, emulator.Config{AccessToken: "tok", AppSecret: "sec", CallbackURL: recv.URL, CallbackPermission: on})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: e.URL(), AccessToken: "tok", PhoneNumberID: e.PhoneNumberID(), WABAID: e.WABAID()})
			if err != nil {
				t.Fatal(err)
			}
			const user = "5511900000403"
			callID, err := e.PlaceCall(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			want := 1 // the connect
			if on {
				want++ // and the permission
			}
			for {
				mu.Lock()
				n := len(events)
				mu.Unlock()
				if n >= want {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%d webhooks, want %d", n, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			i := slices.IndexFunc(events, func(ev whatsapp.Event) bool { return ev.Type == whatsapp.EventPermissionReply })
			var reply *whatsapp.PermissionReply
			if i >= 0 {
				reply = events[i].Permission
			}
			mu.Unlock()
			state, err := client.CallPermission(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if !on {
				if reply != nil || state.Granted(time.Now()) {
					t.Errorf("callback permission off: reply %+v, state %+v; want no permission", reply, state)
				}
				return
			}
			if reply == nil || !reply.Granted || reply.Permanent || reply.Source != "automatic" || reply.ContextID != callID || reply.From != user ||
				reply.Expires.Before(time.Now().Add(7*24*time.Hour-time.Minute)) {
				t.Errorf("permission reply %+v; want an automatic 7-day grant in reply to call %s", reply, callID)
			}
			if state.Status != whatsapp.MetaPermissionTemporary || !state.Granted(time.Now()) {
				t.Errorf("call_permissions %+v; want temporary", state)
			}
		})
	}
}
