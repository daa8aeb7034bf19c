package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/turbina-dialer/turbina/storage"
)

// Several nodes on one database each run a registrar; a phone registers to one
// of them, while the agent is served by the node that holds its campaign. Each
// registrar therefore keeps its bindings in the database too
// (RegistrarConfig.Shared), beside its own in memory: the memory is what it
// probes (only the node that took the REGISTER sends the phone OPTIONS) and
// what its TCP phones' connections belong to; the database is what any node
// calls, shows and checks a replayed REGISTER against.

// sharedTimeout bounds one read or write of the shared bindings.
const sharedTimeout = 5 * time.Second

// shared is b as the database keeps it.
func (b *Binding) shared() storage.PhoneBinding {
	return storage.PhoneBinding{
		AgentID: b.AgentID, ContactKey: contactKey(b.contact), Contact: b.Contact, AOR: b.aor.String(),
		Username: b.Username, Source: b.Source, Transport: b.Transport, UserAgent: b.UserAgent, Node: b.Node,
		CallID: b.callID, CSeq: b.cseq, RegisteredAt: b.RegisteredAt, Expires: b.Expires,
	}
}

// bindingFrom is the binding the database keeps as p.
func bindingFrom(p storage.PhoneBinding) (Binding, error) {
	b := Binding{
		AgentID: p.AgentID, Username: p.Username, Contact: p.Contact, Source: p.Source, Transport: p.Transport,
		UserAgent: p.UserAgent, RegisteredAt: p.RegisteredAt, Expires: p.Expires, Node: p.Node,
		callID: p.CallID, cseq: p.CSeq,
	}
	if err := sip.ParseUri(p.Contact, &b.contact); err != nil {
		return Binding{}, fmt.Errorf("agent %d's shared binding: contact %q: %w", p.AgentID, p.Contact, err)
	}
	if err := sip.ParseUri(p.AOR, &b.aor); err != nil {
		return Binding{}, fmt.Errorf("agent %d's shared binding: aor %q: %w", p.AgentID, p.AOR, err)
	}
	return b, nil
}

// sharedBindings reads agentID's live bindings from the database, of every
// node; none without one.
func (r *Registrar) sharedBindings(ctx context.Context, agentID int64, now time.Time) ([]Binding, error) {
	if r.cfg.Shared == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	rows, err := r.cfg.Shared.PhoneBindings(ctx, agentID, now)
	if err != nil {
		return nil, err
	}
	out := make([]Binding, 0, len(rows))
	for _, p := range rows {
		b, err := bindingFrom(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Registered returns the agent's most recently refreshed live binding on any
// node sharing the database (this registrar's own without
// RegistrarConfig.Shared): what says whether an agent's phone is registered.
// With a database, it is the database's word: a binding this node took and
// another node since removed (the phone unregistered through it) is gone.
func (r *Registrar) Registered(ctx context.Context, agentID int64) (Binding, bool, error) {
	if r.cfg.Shared == nil {
		b, ok := r.Lookup(agentID)
		return b, ok, nil
	}
	all, err := r.sharedBindings(ctx, agentID, r.now())
	if err != nil {
		return Binding{}, false, fmt.Errorf("agent %d's phone registration: %w", agentID, err)
	}
	if len(all) == 0 {
		return Binding{}, false, nil
	}
	return all[0], true, nil // the latest refreshed first
}

// callable is the binding a call to agentID goes to: the most recently
// refreshed of this node's and, over UDP, of the other nodes' (a UDP phone
// answers any node that sends to its source address). Over TCP only the node
// holding the connection reaches it: a phone bound that way to another node
// alone is ErrPhoneElsewhere. Should the database not answer, this node's own
// binding is called.
func (r *Registrar) callable(ctx context.Context, agentID int64) (Binding, error) {
	local, ok := r.Lookup(agentID)
	if r.cfg.Shared == nil {
		if !ok {
			return Binding{}, ErrNotRegistered
		}
		return local, nil
	}
	all, err := r.sharedBindings(ctx, agentID, r.now())
	if err != nil {
		if ok {
			r.log.Warn("sip registrar: shared bindings unreadable; calling the phone registered here", "agent", agentID, "err", err)
			return local, nil
		}
		return Binding{}, fmt.Errorf("%w: its registrations on other nodes could not be read: %w", ErrNotRegistered, err)
	}
	var elsewhere *Binding
	for i, b := range all { // the latest refreshed first
		if b.Transport == "tcp" && b.Node != r.cfg.Node {
			if elsewhere == nil {
				elsewhere = &all[i]
			}
			continue
		}
		return b, nil
	}
	if elsewhere != nil {
		return Binding{}, fmt.Errorf("%w: node %s holds its connection (contact %s); register it through an address every node shares",
			ErrPhoneElsewhere, elsewhere.Node, elsewhere.Contact)
	}
	return Binding{}, ErrNotRegistered
}

// dropUnshared forgets this node's bindings that the database no longer holds
// as this node's: the phone unregistered through another node, or registered
// the contact there since. Only the node holding a phone's registration probes
// it. A binding refreshed within sharedTimeout of the read is kept: its
// REGISTER's write may not have landed yet; so is one the database refused.
func (r *Registrar) dropUnshared() {
	if r.cfg.Shared == nil {
		return
	}
	read := r.now()
	ctx, cancel := context.WithTimeout(r.rootCtx, sharedTimeout)
	rows, err := r.cfg.Shared.LivePhoneBindings(ctx, read)
	cancel()
	if err != nil {
		if r.rootCtx.Err() == nil {
			r.log.Warn("sip registrar: shared bindings unreadable", "err", err)
		}
		return
	}
	held := make(map[string]bool, len(rows))
	id := func(agentID int64, key string, at time.Time) string {
		return fmt.Sprint(agentID, " ", key, " ", at.UnixMilli())
	}
	for _, p := range rows {
		if p.Node == r.cfg.Node {
			held[id(p.AgentID, p.ContactKey, p.RegisteredAt)] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for agentID, list := range r.bindings {
		r.setBindingsLocked(agentID, slices.DeleteFunc(list, func(b *Binding) bool {
			if b.unshared || held[id(agentID, contactKey(b.contact), b.RegisteredAt)] || !b.RegisteredAt.Before(read.Add(-sharedTimeout)) {
				return false
			}
			r.log.Info("agent phone registration moved or removed on another node", "agent", agentID, "contact", b.Contact)
			return true
		}))
	}
}

// share writes a REGISTER's changes to agentID's bindings for the other nodes.
func (r *Registrar) share(agentID int64, save []*Binding, remove []string) error {
	if r.cfg.Shared == nil || len(save)+len(remove) == 0 {
		return nil
	}
	rows := make([]storage.PhoneBinding, 0, len(save))
	for _, b := range save {
		rows = append(rows, b.shared())
	}
	ctx, cancel := context.WithTimeout(r.rootCtx, sharedTimeout)
	defer cancel()
	return r.cfg.Shared.UpdatePhoneBindings(ctx, agentID, rows, remove)
}

// forgetShared removes a binding found lost from the database, unless the
// phone has registered that contact again since, here or on another node.
func (r *Registrar) forgetShared(b *Binding) {
	if r.cfg.Shared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.rootCtx, sharedTimeout)
	defer cancel()
	if _, err := r.cfg.Shared.ForgetPhoneBinding(ctx, b.shared()); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("sip registrar: forget a lost phone's shared binding", "agent", b.AgentID, "contact", b.Contact, "err", err)
	}
}

// purgeShared deletes every node's expired bindings from the database: a node
// that died leaves its own until they expire.
func (r *Registrar) purgeShared(now time.Time) {
	if r.cfg.Shared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.rootCtx, sharedTimeout)
	defer cancel()
	if _, err := r.cfg.Shared.PurgePhoneBindings(ctx, now); err != nil && r.rootCtx.Err() == nil {
		r.log.Warn("sip registrar: purge expired shared bindings", "err", err)
	}
}
