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
				mine := Mine(n, tc.nodes, tc.running)
				for _, c := range mine {
					if slices.Contains(all, c) {
						t.Errorf("campaign %d is given to two nodes (one is %s)", c, n)
					}
				}
				all = append(all, mine...)
				reordered := slices.Clone(tc.nodes)
				slices.Reverse(reordered)
				if again := Mine(n, reordered, tc.running); !slices.Equal(again, mine) {
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
			if got := Mine("z", tc.nodes, campaignsUpTo(10)); len(got) != 0 {
				t.Errorf("Mine = %v, want none: a node that is not live runs nothing", got)
			}
		})
	}
	if got := Owner(1, nil); got != "" {
		t.Errorf("Owner with no nodes = %q, want \"\"", got)
	}
}

// TestSpreadIsEven: with n nodes each gets close to 1/n of many campaigns.
func TestSpreadIsEven(t *testing.T) {
	running := campaignsUpTo(3000)
	for _, nodes := range [][]string{
		{"a", "b"},
		{"node-1", "node-2", "node-3"},
		{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080", "10.0.0.5:8080"},
	} {
		fair := len(running) / len(nodes)
		for _, n := range nodes {
			got := len(Mine(n, nodes, running))
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
