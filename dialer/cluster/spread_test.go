package cluster

import (
	"slices"
	"testing"
)

func campaignsUpTo(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// TestMineSplitsTheCampaigns: the nodes' shares are disjoint and cover every
// running campaign, whatever order each node lists the nodes in.
func TestMineSplitsTheCampaigns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   []string
		running []int64
	}{
		{"one node takes all", []string{"a"}, campaignsUpTo(5)},
		{"three nodes", []string{"a", "b", "c"}, campaignsUpTo(40)},
		{"three nodes listed in another order", []string{"c", "a", "b"}, campaignsUpTo(40)},
		{"no campaigns", []string{"a", "b"}, nil},
		{"more nodes than campaigns", []string{"a", "b", "c", "d", "e"}, []int64{7, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all []int64
			for _, n := range tc.nodes {
				mine := Mine(n, tc.nodes, tc.running, nil)
				for _, c := range mine {
					if slices.Contains(all, c) {
						t.Errorf("campaign %d is given to two nodes (one is %s)", c, n)
					}
				}
				all = append(all, mine...)
				reordered := slices.Clone(tc.nodes)
				slices.Reverse(reordered)
				if again := Mine(n, reordered, tc.running, nil); !slices.Equal(again, mine) {
					t.Errorf("node %s: %v with the nodes in one order, %v in another", n, mine, again)
				}
			}
			slices.Sort(all)
			want := slices.Clone(tc.running)
			slices.Sort(want)
			if !slices.Equal(all, want) {
				t.Errorf("the shares cover %v, want every running campaign %v", all, want)
			}
		})
	}
}

func TestMineOfANodeNotLive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []string
	}{
		{"not among the live", []string{"a", "b"}},
		{"no live nodes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Mine("z", tc.nodes, campaignsUpTo(10), nil); len(got) != 0 {
				t.Errorf("Mine = %v, want none: a node that is not live runs nothing", got)
			}
		})
	}
	if got := Owner(1, nil); got != "" {
		t.Errorf("Owner with no nodes = %q, want \"\"", got)
	}
}

// TestSpreadIsEven: with n nodes each gets close to 1/n of many campaigns (no
// more than its share, since a node at its share is given no more).
func TestSpreadIsEven(t *testing.T) {
	running := campaignsUpTo(3000)
	for _, nodes := range [][]string{
		{"a", "b"},
		{"node-1", "node-2", "node-3"},
		{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080", "10.0.0.5:8080"},
	} {
		fair := len(running) / len(nodes)
		for _, n := range nodes {
			got := len(Mine(n, nodes, running, nil))
			// Binomial spread: the standard deviation is under 30 here; 15% of
			// the fair share is more than four of them.
			if got < fair*85/100 || got > fair*115/100 {
				t.Errorf("%d nodes: %s runs %d of %d campaigns, want about %d", len(nodes), n, got, len(running), fair)
			}
		}
	}
}

// TestADeadNodesCampaignsMoveAlone: when a node dies, only its campaigns change
// owner; when it comes back, only campaigns it takes change.
func TestADeadNodesCampaignsMoveAlone(t *testing.T) {
	running := campaignsUpTo(500)
	all := []string{"a", "b", "c", "d"}
	without := []string{"a", "b", "d"}
	moved := 0
	for _, c := range running {
		before, after := Owner(c, all), Owner(c, without)
		switch {
		case before == "c":
			moved++
			if after == "c" {
				t.Fatalf("campaign %d stays with the dead node", c)
			}
		case before != after:
			t.Errorf("campaign %d moves from %s to %s, though %s is alive", c, before, after, before)
		}
	}
	if moved == 0 {
		t.Fatal("the dead node ran nothing: the test proves nothing")
	}
}

// heldBy maps each campaign of each node's list to that node.
func heldBy(byNode map[string][]int64) map[int64]string {
	out := map[int64]string{}
	for n, cs := range byNode {
		for _, c := range cs {
			out[c] = n
		}
	}
	return out
}

// TestMineKeepsWhatRuns: a live taker keeps the campaigns it holds whoever
// joins; what is free, or held by a node that no longer takes (draining, left
// out of nodes), goes to a node holding fewest.
func TestMineKeepsWhatRuns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   []string
		running []int64
		held    map[int64]string
		want    map[string][]int64
	}{
		{
			name:    "a node joining takes nothing that runs",
			nodes:   []string{"a", "b", "c"},
			running: campaignsUpTo(4),
			held:    heldBy(map[string][]int64{"a": {1, 2}, "b": {3, 4}}),
			want:    map[string][]int64{"a": {1, 2}, "b": {3, 4}, "c": nil},
		},
		{
			name:    "a free campaign goes to the node holding fewest",
			nodes:   []string{"a", "b", "c"},
			running: campaignsUpTo(5),
			held:    heldBy(map[string][]int64{"a": {1, 2}, "b": {3, 4}}),
			want:    map[string][]int64{"a": {1, 2}, "b": {3, 4}, "c": {5}},
		},
		{
			name:    "an empty node takes a free campaign before one below its share",
			nodes:   []string{"a", "b", "c"},
			running: campaignsUpTo(5),
			held:    heldBy(map[string][]int64{"a": {1, 2, 3}, "b": {4}}),
			want:    map[string][]int64{"a": {1, 2, 3}, "b": {4}, "c": {5}},
		},
		{
			name:    "a draining node's campaigns go to the takers holding fewest",
			nodes:   []string{"a", "b"},
			running: campaignsUpTo(4),
			held:    heldBy(map[string][]int64{"a": {1}, "b": {2}, "draining": {3, 4}}),
			// a and b hold one each: each takes one; which one is the hash's.
		},
		{
			name:    "a node holding campaigns while others are empty keeps them",
			nodes:   []string{"a", "b", "c"},
			running: campaignsUpTo(3),
			held:    heldBy(map[string][]int64{"a": {1, 2, 3}}),
			want:    map[string][]int64{"a": {1, 2, 3}, "b": nil, "c": nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all []int64
			for _, n := range tc.nodes {
				mine := Mine(n, tc.nodes, tc.running, tc.held)
				if tc.want != nil && !slices.Equal(mine, tc.want[n]) {
					t.Errorf("%s runs %v, want %v", n, mine, tc.want[n])
				}
				for _, c := range mine {
					if h, ok := tc.held[c]; ok && h != n && slices.Contains(tc.nodes, h) {
						t.Errorf("%s is given campaign %d, which %s runs", n, c, h)
					}
				}
				if len(mine) > Share(len(tc.running), len(tc.nodes)) && tc.want == nil {
					t.Errorf("%s is given %v, more than its share", n, mine)
				}
				all = append(all, mine...)
			}
			slices.Sort(all)
			if !slices.Equal(all, tc.running) {
				t.Errorf("the nodes run %v together, want each of %v once", all, tc.running)
			}
		})
	}
}

func TestOverloaded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		self  string
		nodes []string
		held  map[string][]int64
		total int
		want  bool
	}{
		{"two over its share of 3", "a", []string{"a", "b"}, map[string][]int64{"a": {1, 2, 3, 4, 5}, "b": {6}}, 6, true},
		{"one over its share of 3", "a", []string{"a", "b"}, map[string][]int64{"a": {1, 2, 3, 4}, "b": {5, 6}}, 6, false},
		{"a joiner leaves three campaigns on one node of three", "a", []string{"a", "b", "c"}, map[string][]int64{"a": {1, 2, 3}}, 3, true},
		{"two on one node of three", "a", []string{"a", "b", "c"}, map[string][]int64{"a": {1, 2}}, 3, false},
		{"its share exactly", "a", []string{"a", "b"}, map[string][]int64{"a": {1, 2}, "b": {3, 4}}, 4, false},
		{"not among the nodes (draining)", "a", []string{"b"}, map[string][]int64{"a": {1, 2, 3, 4}}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Overloaded(tc.self, tc.nodes, campaignsUpTo(tc.total), heldBy(tc.held)); got != tc.want {
				t.Errorf("Overloaded = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRebalanceEnds plays the nodes' rounds: each overloaded node hands one
// campaign over (releases it), then every node takes what Mine gives it. Ten
// campaigns on one node, two nodes joining: the spread evens out to at most
// its share plus one each, in a bounded number of rounds, and no campaign
// ever goes back to a node that handed it over.
func TestRebalanceEnds(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	running := campaignsUpTo(10)
	held := heldBy(map[string][]int64{"a": running})
	gaveUp := map[int64]string{}
	moves := 0
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatalf("still rebalancing after %d rounds: %v", round, held)
		}
		shed := false
		for _, n := range nodes {
			if !Overloaded(n, nodes, running, held) {
				continue
			}
			for _, c := range running {
				if held[c] == n {
					delete(held, c)
					gaveUp[c] = n
					shed = true
					moves++
					break
				}
			}
		}
		for _, n := range nodes {
			for _, c := range Mine(n, nodes, running, held) {
				if _, ok := held[c]; ok {
					continue
				}
				if gaveUp[c] == n {
					t.Fatalf("campaign %d went back to %s, which handed it over", c, n)
				}
				held[c] = n
			}
		}
		if len(held) != len(running) {
			t.Fatalf("round %d left campaigns free: %v", round, held)
		}
		if !shed {
			break
		}
	}
	load := map[string]int{}
	for _, n := range held {
		load[n]++
	}
	for _, n := range nodes {
		if load[n] > Share(len(running), len(nodes))+1 {
			t.Errorf("%s holds %d of %d campaigns after the rebalance", n, load[n], len(running))
		}
	}
	// 10 on three nodes: share 4, so a keeps 5 and hands over 5.
	if moves != 5 {
		t.Errorf("%d campaigns moved, want 5 (a down to share+1)", moves)
	}
}
