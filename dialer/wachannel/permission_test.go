package wachannel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/waevents"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// TestPermissionReadFromMetaWhenARetryIsDue: the gate lets a WhatsApp call
// through for a contact whose permission is requested or denied here once
// another request is allowed; the channel then reads Meta's state before
// anything else. A person who granted it since (in the business profile) is
// called; one who did not is asked again within Meta's limits, and not at all
// past them, with the instant Meta gives kept for the gate.
func TestPermissionReadFromMetaWhenARetryIsDue(t *testing.T) {
	for _, tc := range []struct {
		name       string
		local      string
		setup      func(t *testing.T, w *world)
		wantCall   bool
		wantSends  int
		wantState  string
		wantBound  bool
		wantCounts int
	}{
		{name: "granted in the profile since", local: storage.PermissionRequested,
			setup:    func(_ *testing.T, w *world) { w.emu.GrantPermission(w.contact.Phone, time.Now().Add(48*time.Hour)) },
			wantCall: true, wantState: storage.PermissionGranted},
		{name: "denied, still not granted: asked again", local: storage.PermissionDenied,
			wantSends: 1, wantState: storage.PermissionRequested, wantCounts: 1},
		{name: "asked today already (Meta counts it): not asked", local: storage.PermissionRequested,
			setup: func(t *testing.T, w *world) {
				if _, err := w.client.SendTemplate(context.Background(), "earlier", whatsapp.TemplateMessage{To: w.contact.Phone, Name: "pedido_ligacao", Language: "pt_BR"}); err != nil {
					t.Fatal(err)
				}
			},
			wantSends: 1, wantState: storage.PermissionRequested, wantBound: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			w.emu.Script(w.contact.Phone, emulator.Behaviour{RequirePermission: true, Call: emulator.CallNoAnswer})
			if err := w.store.SetWhatsAppPermission(ctx, w.contact.ID, tc.local, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, w)
			}
			calls := wachannel.NewCalls(w.client, w.store, "Podemos ligar?")
			start := time.Now()
			att, err := calls.Place(ctx, channel.PlaceRequest{Key: "contact-1-try-2", Contact: w.contact, To: w.contact.Phone,
				Permission: campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}})
			connects := 0
			for _, r := range w.emu.Requests() {
				if r.Action == "connect" {
					connects++
				}
			}
			if tc.wantCall {
				if err != nil {
					t.Fatalf("place: %v", err)
				}
				if err := att.Hangup(ctx); err != nil {
					t.Fatal(err)
				}
				if connects != 1 {
					t.Errorf("%d connects, want 1", connects)
				}
			} else {
				var oe *channel.OutcomeError
				if !errors.As(err, &oe) || oe.Outcome != campaigns.OutcomeNoPermission {
					t.Fatalf("place: %v, want no_permission", err)
				}
				if connects != 0 {
					t.Errorf("%d connects for a person Meta says has not granted it", connects)
				}
			}
			if n := w.sends(); n != tc.wantSends {
				t.Errorf("%d message sends, want %d", n, tc.wantSends)
			}
			state, until, err := w.store.WhatsAppPermission(ctx, w.contact.ID)
			if err != nil || state != tc.wantState {
				t.Errorf("permission %q (%v), want %q", state, err, tc.wantState)
			}
			if tc.wantCall && until.Before(time.Now().Add(47*time.Hour)) {
				t.Errorf("granted until %v, want Meta's expiry in 48 h", until)
			}
			f, err := w.store.PolicyFacts(ctx, w.contact.ID, w.contact.Phone, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(f.PermissionRequests) != tc.wantCounts {
				t.Errorf("%d requests counted, want %d", len(f.PermissionRequests), tc.wantCounts)
			}
			if got := !f.PermissionNextRequest.IsZero(); got != tc.wantBound {
				t.Errorf("Meta's bound %v, want one: %v", f.PermissionNextRequest, tc.wantBound)
			}
			if tc.wantBound && f.PermissionNextRequest.Before(start.Add(24*time.Hour-2*time.Second)) {
				t.Errorf("Meta's bound %v, want a day after the earlier request", f.PermissionNextRequest)
			}
		})
	}
}

// TestPermissionExistsMarksGranted: a request Meta refuses with 138017 (the
// person gave permanent permission, which its state had not shown yet) records
// the permission granted, for good, and counts no request.
func TestPermissionExistsMarksGranted(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.emu.Script(w.contact.Phone, emulator.Behaviour{ErrorCode: whatsapp.CodePermissionExists})
	if err := w.store.SetWhatsAppPermission(ctx, w.contact.ID, storage.PermissionDenied, time.Time{}); err != nil {
		t.Fatal(err)
	}
	calls := wachannel.NewCalls(w.client, w.store, "Podemos ligar?")
	calls.RequestPermission(ctx, channel.PlaceRequest{Key: "contact-1-try-1", Contact: w.contact, To: w.contact.Phone,
		Permission: campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}})
	if n := w.sends(); n != 1 {
		t.Errorf("%d sends, want the one Meta refused", n)
	}
	state, until, err := w.store.WhatsAppPermission(ctx, w.contact.ID)
	if err != nil || state != storage.PermissionGranted || !until.IsZero() {
		t.Errorf("permission %q until %v (%v), want granted for good", state, until, err)
	}
	f, err := w.store.PolicyFacts(ctx, w.contact.ID, w.contact.Phone, time.Now())
	if err != nil || len(f.PermissionRequests) != 0 {
		t.Errorf("requests counted %v (%v), want none", f.PermissionRequests, err)
	}
}

// TestGrantFromMetaOutlivesAnOlderReject: a grant the channel learned from Meta
// (its call_permissions state, or a request refused with 138017) is recorded as
// of when it was observed, so a "reject" webhook older than that which arrives
// afterwards, applied through the Inbox by event time, leaves it granted.
func TestGrantFromMetaOutlivesAnOlderReject(t *testing.T) {
	for _, tc := range []struct {
		name string
		// learn makes the channel learn of the grant from Meta.
		learn func(t *testing.T, w *world, calls *wachannel.Calls, req channel.PlaceRequest)
	}{
		{name: "read from Meta's state before a call", learn: func(t *testing.T, w *world, calls *wachannel.Calls, req channel.PlaceRequest) {
			t.Helper()
			w.emu.Script(w.contact.Phone, emulator.Behaviour{RequirePermission: true, Call: emulator.CallNoAnswer})
			w.emu.GrantPermission(w.contact.Phone, time.Now().Add(48*time.Hour))
			att, err := calls.Place(context.Background(), req)
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			if err := att.Hangup(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "implied by 138017", learn: func(t *testing.T, w *world, calls *wachannel.Calls, req channel.PlaceRequest) {
			t.Helper()
			w.emu.Script(w.contact.Phone, emulator.Behaviour{ErrorCode: whatsapp.CodePermissionExists})
			calls.RequestPermission(context.Background(), req)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			if err := w.store.SetWhatsAppPermission(ctx, w.contact.ID, storage.PermissionRequested, time.Time{}); err != nil {
				t.Fatal(err)
			}
			calls := wachannel.NewCalls(w.client, w.store, "Podemos ligar?")
			start := time.Now()
			tc.learn(t, w, calls, channel.PlaceRequest{Key: "contact-1-try-1", Contact: w.contact, To: w.contact.Phone,
				Permission: campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}})
			if state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID); err != nil || state != storage.PermissionGranted {
				t.Fatalf("permission %q (%v) after Meta told of the grant, want granted", state, err)
			}

			in := waevents.New(w.store, stillEngine{}, waevents.Config{})
			older := whatsapp.Event{Key: "reject-older", Type: whatsapp.EventPermissionReply, Time: start.Add(-time.Minute),
				Permission: &whatsapp.PermissionReply{MessageID: "wamid.older", From: w.contact.Phone[1:], Granted: false}}
			if err := in.Apply(ctx, older); err != nil {
				t.Fatal(err)
			}
			if state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID); err != nil || state != storage.PermissionGranted {
				t.Errorf("permission %q (%v) after a reject older than the grant, want still granted", state, err)
			}

			// A reject newer than the grant still decides: the order is by time,
			// not a grant that nothing undoes.
			newer := older
			newer.Key, newer.Time = "reject-newer", time.Now().Add(time.Minute)
			newer.Permission = &whatsapp.PermissionReply{MessageID: "wamid.newer", From: w.contact.Phone[1:], Granted: false}
			if err := in.Apply(ctx, newer); err != nil {
				t.Fatal(err)
			}
			if state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID); err != nil || state != storage.PermissionDenied {
				t.Errorf("permission %q (%v) after a reject newer than the grant, want denied", state, err)
			}
		})
	}
}

// stillEngine is the engine side of an Inbox that leaves contacts where they
// are: the test looks only at the recorded permission.
type stillEngine struct{}

func (stillEngine) JourneyMove([]campaigns.Rung, campaigns.Event, time.Time) storage.MoveFunc {
	return func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) { return pos, nil }
}

func (stillEngine) OptOut(context.Context, storage.Actor, []string, string) ([]string, error) {
	return nil, nil
}

func (stillEngine) RouteInboundCall(context.Context, whatsapp.Event) error { return nil }

func (stillEngine) CampaignChanged() {}

// TestPermissionRequestedAndItsReplyInEitherOrder: the channel records
// "requested" as of the request's second (Meta stamps replies in seconds), and
// the person's reply, applied through the Inbox by event time, stands whether
// its webhook is applied before the channel records the request (it overtook
// the send's answer) or after. A reply to this request, in its second or
// later, wins in both orders; a reply older than the request (to an earlier
// one) does not undo it.
func TestPermissionRequestedAndItsReplyInEitherOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		// first: the reply is applied before the channel records the request.
		first   bool
		after   time.Duration // the reply's time after the request's second
		granted bool
		want    string
	}{
		{name: "accept in the request's second, applied first", first: true, granted: true, want: storage.PermissionGranted},
		{name: "reject in the request's second, applied first", first: true, want: storage.PermissionDenied},
		{name: "newer accept applied first", first: true, after: 2 * time.Second, granted: true, want: storage.PermissionGranted},
		{name: "accept in the request's second, applied after", granted: true, want: storage.PermissionGranted},
		{name: "accept newer, applied after", after: 2 * time.Second, granted: true, want: storage.PermissionGranted},
		{name: "reject older than the request, applied after", after: -time.Minute, want: storage.PermissionRequested},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			in := waevents.New(w.store, stillEngine{}, waevents.Config{})
			req := channel.PlaceRequest{Key: "contact-1-try-1", Contact: w.contact, To: w.contact.Phone,
				Permission: campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}}
			reply := func() {
				t.Helper()
				m, err := w.store.OutboxByKey(ctx, fmt.Sprintf("permission-contact-%d-%s", w.contact.ID, req.Key))
				if err != nil {
					t.Fatal(err)
				}
				ev := whatsapp.Event{Key: "reply", Type: whatsapp.EventPermissionReply, Time: m.CreatedAt.Truncate(time.Second).Add(tc.after),
					Permission: &whatsapp.PermissionReply{MessageID: "wamid.reply", From: w.contact.Phone[1:], Granted: tc.granted,
						Expires: time.Now().Add(7 * 24 * time.Hour)}}
				if err := in.Apply(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			store := &replyFirst{DB: w.store}
			if tc.first {
				store.apply = reply
			}
			wachannel.NewCalls(w.client, store, "Podemos ligar?").RequestPermission(ctx, req)
			if n := w.sends(); n != 1 {
				t.Fatalf("%d sends, want the request", n)
			}
			if !tc.first {
				if state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID); err != nil || state != storage.PermissionRequested {
					t.Fatalf("permission %q (%v) after the request, want requested", state, err)
				}
				reply()
			}
			if state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID); err != nil || state != tc.want {
				t.Errorf("permission %q (%v), want %q", state, err, tc.want)
			}
		})
	}
}

// replyFirst is the store of a channel whose request's reply is applied (by
// apply) the moment the channel records that the request was sent: the reply's
// webhook overtook the send's answer.
type replyFirst struct {
	*storage.DB
	apply func()
}

func (s *replyFirst) RecordPermissionRequest(ctx context.Context, contactID int64, phone string, at time.Time) error {
	if s.apply != nil {
		s.apply()
	}
	return s.DB.RecordPermissionRequest(ctx, contactID, phone, at)
}
