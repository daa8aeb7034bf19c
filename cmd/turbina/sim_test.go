package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// simScenario writes a small scenario (two agents, one hour) and returns its path.
func simScenario(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.json")
	const sc = `{"name":"tiny","seed":7,"duration_s":3600,"agents":2,"answer_prob":0.4,
		"machine_prob":0.05,"fail_prob":0.05,"ring_s":{"dist":"lognormal","mean":9,"sd":5},
		"no_answer_s":25,"fail_s":{"dist":"uniform","min":1,"max":4},
		"talk_s":{"dist":"exponential","mean":120},"wrap_s":{"dist":"constant","value":10},
		"machine_s":{"dist":"uniform","min":3,"max":6},"patience_s":2,"target_abandon":0.03}`
	if err := os.WriteFile(path, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSimSeeds(t *testing.T) {
	path := simScenario(t)
	var out bytes.Buffer
	err := runSim(context.Background(), []string{"--scenario", path, "--pacer", "progressive", "--seeds", "3", "--json"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r struct{ Scenario string }
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Scenario)
	}
	if got, want := strings.Join(names, " "), "tiny@7 tiny@8 tiny@9"; got != want {
		t.Errorf("runs %q, want %q", got, want)
	}

	out.Reset()
	err = runSim(context.Background(), []string{"--scenario", path, "--pacer", "progressive", "--pacer", "ratio:2", "--seeds", "2", "--idle"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"runs_over_cap", "no_dial", "given_up", "tiny@8"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// One summary line per pacer, each over its two runs.
	for _, pacer := range []string{"progressive", "ratio:2"} {
		n := 0
		for line := range strings.Lines(text) {
			if f := strings.Fields(line); len(f) == 9 && f[0] == "tiny" && f[1] == pacer && f[2] == "2" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d summary lines over 2 runs, want 1:\n%s", pacer, n, text)
		}
	}
}

func TestSimUsage(t *testing.T) {
	path := simScenario(t)
	for _, args := range [][]string{
		{"--scenario", path, "--idle", "--json"},
		{"--scenario", path, "--seeds", "0"},
	} {
		if err := runSim(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%v: error %v, want errUsage", args, err)
		}
	}
}
