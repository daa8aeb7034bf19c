package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// Several nodes (`turbina serve` processes on one PostgreSQL database) share the
// campaigns: each campaign's run is its lease holder's (storage.LeaseStore). An
// agent's session (its state, its calls, its audio) lives in the engine of the
// node that runs the agent's campaign, the agent's home node; its page may reach
// any node, as a load balancer spreads them. So each node serves an agent's own
// endpoints itself only when it is the agent's home, and forwards them there
// otherwise, WebSocket included: nothing needs to be sticky in front of the
// nodes, and when a campaign moves the page, reconnecting by itself through any
// node, lands on the new holder.

// DefaultNodeTimeout is Cluster.NodeTimeout when zero: a node whose heartbeat
// is older is not forwarded to.
const DefaultNodeTimeout = 10 * time.Second

// forwardedByHeader names the node that forwarded a request. The receiver
// serves such a request itself, whoever it thinks the agent's home is: while a
// lease moves two nodes may briefly disagree, and must not pass a request back
// and forth. A client that sets it only keeps its request on the node it
// reached, which authenticates it as any other.
const forwardedByHeader = "X-Turbina-Forwarded-By"

// nodeRetryAfter is the Retry-After of an agent's request whose home node
// cannot be reached: about the time a dead node's campaigns take to move.
const nodeRetryAfter = "2"

// Cluster makes the server one node of several on one database.
type Cluster struct {
	// Node is this process's ID in the database's nodes table (storage.Node.ID).
	// Empty: the server is alone on its database and serves every agent itself.
	Node string
	// NodeTimeout is how old a node's last heartbeat may be for requests to be
	// forwarded to it; DefaultNodeTimeout when zero.
	NodeTimeout time.Duration
	// HomeCheck is how often an agent's open event stream checks that this
	// node is still the agent's home; DefaultHomeCheck when zero.
	HomeCheck time.Duration
}

// DefaultHomeCheck is Cluster.HomeCheck when zero.
const DefaultHomeCheck = 3 * time.Second

// clusterMaxAge is how old the leases and nodes an agent's home is read from
// may be: one read a second serves every agent's requests and streams.
const clusterMaxAge = time.Second

// clusterView is the leases and live nodes as last read, shared by the
// requests and streams of every agent.
type clusterView struct {
	mu     sync.Mutex
	at     time.Time
	leases []storage.Lease
	nodes  []storage.Node
}

// read returns the leases and live nodes, read again when older than
// clusterMaxAge. Callers at the same time wait for one read.
func (v *clusterView) read(ctx context.Context, store storage.Store, timeout time.Duration) ([]storage.Lease, []storage.Node, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.at.IsZero() && time.Since(v.at) < clusterMaxAge {
		return v.leases, v.nodes, nil
	}
	leases, err := store.Leases(ctx)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := store.LiveNodes(ctx, timeout)
	if err != nil {
		return nil, nil, err
	}
	v.at, v.leases, v.nodes = time.Now(), leases, nodes
	return leases, nodes, nil
}

func (c Cluster) homeCheck() time.Duration {
	if c.HomeCheck > 0 {
		return c.HomeCheck
	}
	return DefaultHomeCheck
}

// forwarder returns the transport of forwarded requests that wait up to
// headerWait for their answer to begin: http.DefaultTransport's settings with
// a short connection timeout, so that a node that is gone is told at once.
// Idle connections are dropped after half of idle, the time a node keeps one
// (nodes share their configuration): a relayed POST, which cannot be sent
// again, never goes out on a connection the other node is closing.
func forwarder(headerWait, idle time.Duration) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	// A node that accepts connections but answers nothing (frozen) is given up.
	t.ResponseHeaderTimeout = headerWait
	t.IdleConnTimeout = idle / 2
	return t
}

// streamHeaderWait bounds how long a node may take to accept a forwarded event
// stream, which a live node does at once: a frozen one is reported within it,
// and the page tries again (by then, perhaps, on the campaign's next holder).
const streamHeaderWait = 5 * time.Second

func (c Cluster) nodeTimeout() time.Duration {
	if c.NodeTimeout > 0 {
		return c.NodeTimeout
	}
	return DefaultNodeTimeout
}

// homeHolder is the node holding the live lease of the lowest-numbered of the
// agent's campaigns that has one, "" when none has. Lowest, so that every node
// picks the same one when the agent's campaigns run on several nodes: the
// agent is then served by one of them only, and takes that node's calls.
func homeHolder(assigned []int64, leases []storage.Lease) string {
	var best storage.Lease
	for _, l := range leases {
		if l.Live && slices.Contains(assigned, l.CampaignID) && (best.NodeID == "" || l.CampaignID < best.CampaignID) {
			best = l
		}
	}
	return best.NodeID
}

// errNodeUnavailable is an agent's home node that cannot be reached: the page
// retries, and lands on the campaign's next holder once the lease has moved.
func errNodeUnavailable(node string, why string) *apiError {
	e := errorf(http.StatusServiceUnavailable, "node_unavailable",
		fmt.Sprintf("node %s, which runs the agent's campaign, cannot be reached (%s); try again in a moment", node, why))
	e.retryAfter = nodeRetryAfter
	return e
}

// agentHome is the node that serves agent id, and false when it is this one:
// the holder of the live lease of the agent's campaign (homeHolder), or this
// node when no campaign of the agent has a live lease.
func (s *Server) agentHome(ctx context.Context, agentID int64) (storage.Node, bool, error) {
	assigned, err := s.store.AgentCampaigns(ctx, agentID)
	if err != nil {
		return storage.Node{}, false, fmt.Errorf("the agent's campaigns: %w", err)
	}
	if len(assigned) == 0 {
		return storage.Node{}, false, nil
	}
	leases, nodes, err := s.cluster.read(ctx, s.store, s.cfg.Cluster.nodeTimeout())
	if err != nil {
		return storage.Node{}, false, err
	}
	holder := homeHolder(assigned, leases)
	if holder == "" || holder == s.cfg.Cluster.Node {
		return storage.Node{}, false, nil
	}
	if i := slices.IndexFunc(nodes, func(n storage.Node) bool { return n.ID == holder }); i >= 0 {
		return nodes[i], true, nil
	}
	// Its lease has not expired yet but it stopped heartbeating: it is dying,
	// and another node takes the campaign when the lease runs out.
	return storage.Node{}, false, errNodeUnavailable(holder, "no heartbeat")
}

// atHome makes an agent's handler follow the agent's campaign: it is served
// here when this node is the agent's home or the request was forwarded here,
// and forwarded to the home node otherwise. The caller was authenticated
// before (protect), so no request without credentials is relayed; the home
// node authenticates it again from the same cookie or token.
func (s *Server) atHome(h func(w http.ResponseWriter, r *http.Request, p principal) error) func(w http.ResponseWriter, r *http.Request, p principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		if s.cfg.Cluster.Node == "" || r.Header.Get(forwardedByHeader) != "" {
			return h(w, r, p)
		}
		home, remote, err := s.agentHome(r.Context(), p.ID)
		if ae, ok := errors.AsType[*apiError](err); ok && ae.Code == "node_unavailable" {
			s.metrics.relays.WithLabelValues("node_unavailable").Inc()
		}
		if err != nil {
			return err
		}
		if !remote {
			return h(w, r, p)
		}
		s.forward(w, r, home)
		return nil
	}
}

// forward relays r to node and its answer back as it comes (events at once, a
// WebSocket upgraded end to end). The original Host, Origin, cookie and
// Authorization go as they came, so the home node's origin and CSRF checks see
// what the browser sent; the load balancer's X-Forwarded-* too, as this node
// received them.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, node storage.Node) {
	failed := false
	unavailable := func(why string) {
		failed = true
		s.metrics.relays.WithLabelValues("node_unavailable").Inc()
		writeError(w, errNodeUnavailable(node.ID, why))
	}
	target, err := url.Parse(node.Addr)
	if err != nil || target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") {
		s.log.Error("a node's address is not a base URL", "node", node.ID, "addr", node.Addr)
		unavailable(fmt.Sprintf("its address %q is not an http(s) URL", node.Addr))
		return
	}
	self := s.cfg.Cluster.Node
	transport := s.forwarder
	if isWebSocket(r) {
		transport = s.streamForwarder
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = slices.Clone(v)
				}
			}
			pr.Out.Header.Set(forwardedByHeader, self)
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				failed = true
				return // the caller left
			}
			s.log.Warn("forward an agent's request", "node", node.ID, "addr", node.Addr, "path", r.URL.Path, "err", err)
			unavailable("unreachable")
		},
	}
	rp.ServeHTTP(w, r)
	if !failed {
		s.metrics.relays.WithLabelValues("relayed").Inc()
	}
}

// movedAway reports whether the agent's home is now another node, while its
// event stream is open here: the stream is then ended, so the page reconnects
// and lands there (its campaign's lease was released or taken over while this
// node lives on).
func (s *Server) movedAway(ctx context.Context, agentID int64) (string, bool) {
	home, remote, err := s.agentHome(ctx, agentID)
	if err != nil || !remote {
		// A home that cannot be read or reached keeps the stream: it is
		// checked again, and the page keeps what it has meanwhile.
		return "", false
	}
	return home.ID, true
}
