package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// maxProbes bounds the OPTIONS in flight at once, so that thousands of phones
// are probed without a burst of thousands of transactions.
const maxProbes = 64

// probe is one phone to send an OPTIONS to: a live binding, the calls placed to
// it, or a nailed-up call whose registration has lapsed.
type probe struct {
	binding Binding
	live    *Binding // the registrar's binding, nil when only a call remains
	calls   []*AgentCall
}

// keepalive drops expired bindings and probes every phone each
// KeepaliveInterval, until the registrar closes.
func (r *Registrar) keepalive() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.KeepaliveInterval.Std())
	defer tick.Stop()
	for {
		select {
		case <-r.rootCtx.Done():
			return
		case <-tick.C:
		}
		r.purgeExpired()
		r.purgeShared(r.now())
		r.dropUnshared()
		r.probeAll()
	}
}

// purgeExpired removes the bindings whose registration was not refreshed in time.
func (r *Registrar) purgeExpired() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, list := range r.bindings {
		r.setBindingsLocked(id, slices.DeleteFunc(list, func(b *Binding) bool {
			if b.Expires.After(now) {
				return false
			}
			r.log.Info("agent phone registration expired", "agent", id, "user", b.Username, "contact", b.Contact)
			return true
		}))
	}
}

// setBindingsLocked stores an agent's bindings, forgetting the agent when none is
// left. r.mu must be held.
func (r *Registrar) setBindingsLocked(agentID int64, list []*Binding) {
	if len(list) == 0 {
		delete(r.bindings, agentID)
		return
	}
	r.bindings[agentID] = list
}

// probes lists the phones to probe: one per address calls and OPTIONS go to.
func (r *Registrar) probes() []*probe {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	byKey := map[string]*probe{}
	var out []*probe
	key := func(b Binding) string { return fmt.Sprint(b.AgentID, " ", b.Transport, " ", b.Source, " ", b.Contact) }
	for _, list := range r.bindings {
		for _, b := range list {
			if !b.Expires.After(now) {
				continue
			}
			p := &probe{binding: *b, live: b}
			byKey[key(*b)] = p
			out = append(out, p)
		}
	}
	for _, c := range r.calls {
		p, ok := byKey[key(c.binding)]
		if !ok {
			p = &probe{binding: c.binding}
			byKey[key(c.binding)] = p
			out = append(out, p)
		}
		p.calls = append(p.calls, c)
	}
	return out
}

// probeAll sends one OPTIONS to every phone and waits for the answers.
func (r *Registrar) probeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxProbes)
	for _, p := range r.probes() {
		select {
		case sem <- struct{}{}:
		case <-r.rootCtx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.ping(p.binding); err != nil {
				r.lose(p, err)
				return
			}
			r.keepalives.Add(1)
		}()
	}
	wg.Wait()
}

// ping sends an OPTIONS to the phone of b, where its calls go, and waits for
// any final response: a phone that answers at all, even with an error, is there.
func (r *Registrar) ping(b Binding) error {
	ctx, cancel := context.WithTimeout(r.rootCtx, r.cfg.KeepaliveTimeout.Std())
	defer cancel()
	req := sip.NewRequest(sip.OPTIONS, *b.contact.Clone())
	req.AppendHeader(sip.NewHeader("User-Agent", r.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	req.SetTransport(strings.ToUpper(b.Transport))
	client := r.udpUA.Client
	if b.Transport == "tcp" {
		client = r.tcpUA.Client
		if conn, _ := r.ua.TransportLayer().GetConnection("tcp", b.Source); conn != nil {
			req.SetDestination(b.Source)
		}
	} else {
		req.SetDestination(b.Source)
	}
	res, err := client.Do(ctx, req)
	if err == nil && res == nil {
		// sipgo reports a transaction that ended without a response and
		// without an error this way.
		err = errors.New("no response")
	}
	if err != nil {
		if r.rootCtx.Err() != nil {
			return nil // closing: the phone is not to blame
		}
		return fmt.Errorf("%w: OPTIONS to %s: %w", ErrPhoneLost, b.Contact, err)
	}
	return nil
}

// lose forgets the binding p probed, unless the phone has registered it anew
// meanwhile, and ends the calls to it.
func (r *Registrar) lose(p *probe, err error) {
	r.log.Warn("agent phone lost", "agent", p.binding.AgentID, "contact", p.binding.Contact, "source", p.binding.Source, "err", err)
	r.mu.Lock()
	if p.live != nil {
		id := p.binding.AgentID
		r.setBindingsLocked(id, slices.DeleteFunc(r.bindings[id], func(b *Binding) bool { return b == p.live }))
	}
	r.mu.Unlock()
	if p.live != nil {
		r.forgetShared(&p.binding)
	}
	for _, c := range p.calls {
		c.lose(err)
	}
}
