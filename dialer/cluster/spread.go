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
// node scored second), when one joins it takes about its share from the others
// and no campaign moves between two nodes that stay. It is "" when nodes is
// empty.
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
// should run when nodes are the live ones (self among them, or it gets none).
// A node tries to take the leases of these campaigns when they are free, and
// hands over (drains, then releases) the leases it holds of any other: a
// campaign's new owner by this spread takes it when its old holder lets go or
// dies.
func Mine(self string, nodes []string, running []int64) []int64 {
	if !slices.Contains(nodes, self) {
		return nil
	}
	var out []int64
	for _, c := range running {
		if Owner(c, nodes) == self {
			out = append(out, c)
		}
	}
	return out
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
