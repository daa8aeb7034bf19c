// Package cluster decides how several Turbina nodes on one database share the
// running campaigns. The leases themselves are the storage's (storage.Lease);
// this package is the pure part: which node should run which campaign.
package cluster

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// Owner is the node among nodes that should run the campaign, by rendezvous
// (highest random weight) hashing: each node scores each campaign with a hash
// of the pair, and the highest score wins. Every node computes the same answer
// from the same list of live nodes, with nothing to agree on; campaigns spread
// evenly; and when a node dies only its own campaigns move (each to whichever
// node scored second), and no campaign moves between two nodes that stay. It
// is "" when nodes is empty.
func Owner(campaign int64, nodes []string) string {
	var best string
	var bestScore uint64
	for _, n := range nodes {
		s := score(n, campaign)
		// Ties (a 2^-64 chance) go to the lower ID, so the answer never depends
		// on the order of nodes.
		if best == "" || s > bestScore || s == bestScore && n < best {
			best, bestScore = n, s
		}
	}
	return best
}

// Mine returns, in the order given, the campaigns among running that self
// should run when nodes are the live nodes that take campaigns (self among
// them, or it gets none) and held maps each running campaign whose lease is
// live to its holder. Leases are sticky: a campaign held by one of nodes stays
// with it, so a node joining moves nothing. A campaign that is free (never
// taken, released, expired) or held by a node not among nodes (draining) goes
// to its Owner among the nodes that hold fewest campaigns, taken in campaign
// order, each node's count raised as it is given one: every node computes the
// same answer from the same leases, and the spread evens out without moving
// what runs. A node then takes the campaigns Mine gives it when their leases
// are free; it hands one over only when it holds more than its share allows
// (Overloaded).
func Mine(self string, nodes []string, running []int64, held map[int64]string) []int64 {
	if !slices.Contains(nodes, self) {
		return nil
	}
	load := make(map[string]int, len(nodes))
	var free []int64
	for _, c := range running {
		if h, ok := held[c]; ok && slices.Contains(nodes, h) {
			load[h]++
		} else {
			free = append(free, c)
		}
	}
	slices.Sort(free)
	given := map[int64]bool{}
	least := make([]string, 0, len(nodes))
	for _, c := range free {
		least = least[:0]
		fewest := -1
		for _, n := range nodes {
			switch l := load[n]; {
			case fewest < 0 || l < fewest:
				least, fewest = append(least[:0], n), l
			case l == fewest:
				least = append(least, n)
			}
		}
		o := Owner(c, least)
		load[o]++
		given[c] = o == self
	}
	var out []int64
	for _, c := range running {
		if held[c] == self || given[c] {
			out = append(out, c)
		}
	}
	return out
}

// Share is a node's share of total campaigns spread over nodes: the most an
// even spread gives one node, ceil(total/nodes). It is 0 without nodes.
func Share(total, nodes int) int {
	if nodes <= 0 {
		return 0
	}
	return (total + nodes - 1) / nodes
}

// Overloaded reports whether self holds clearly more than its share of the
// running campaigns spread over nodes (held as in Mine): more than Share+1. It
// should then hand one campaign over, and another only once that one has gone.
//
// The slack of one keeps campaigns still where moving them gains little: a
// hand-over costs the campaign's agents its longest call (the old holder
// dials nothing more there and waits for its calls), while one campaign more
// than the even share is what hashing and the order nodes come and go in leave
// anyway. It also ends every rebalance: the campaign handed over goes to a
// node holding fewest (Mine), below its share since one campaign is free,
// never back to the one that gave it (still at Share+1 or more), so no
// campaign moves back and forth.
func Overloaded(self string, nodes []string, running []int64, held map[int64]string) bool {
	if !slices.Contains(nodes, self) {
		return false
	}
	n := 0
	for _, c := range running {
		if held[c] == self {
			n++
		}
	}
	return n > Share(len(running), len(nodes))+1
}

// score is the weight of node for campaign: FNV-1a of the pair, then
// SplitMix64's finalizer, since FNV's output for inputs that differ in a few
// bytes is not spread well enough to compare.
func score(node string, campaign int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	var b [9]byte // a separator, so ("a", 1) and ("a\x00…", …) differ
	binary.BigEndian.PutUint64(b[1:], uint64(campaign))
	h.Write(b[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
