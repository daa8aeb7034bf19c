package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/turbina-dialer/turbina/dialer/sim"
)

// pacerList is a repeatable --pacer flag.
type pacerList []string

func (p *pacerList) String() string { return strings.Join(*p, ",") }

func (p *pacerList) Set(v string) error {
	*p = append(*p, v)
	return nil
}

// runSim runs the pacing simulator: one scenario, one result per pacer.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "", "scenario `FILE` (JSON, see SCENARIOS.md)")
	var pacers pacerList
	fs.Var(&pacers, "pacer", "pacer `NAME` to run: predictive, progressive, preview, vicidial or ratio:X; repeatable (default "+strings.Join(sim.DefaultPacers(), ", ")+")")
	asJSON := fs.Bool("json", false, "print one JSON object per pacer and line")
	idle := fs.Bool("idle", false, "also print where the agents' ready time went: waiting on a dial in flight (some of it on a stale one) or on none; not with --json")
	seeds := fs.Int("seeds", 1, "run `N` shifts per pacer, with the scenario's seed and the N-1 seeds after it, and sum them up per pacer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: turbina sim --scenario FILE [--pacer NAME]... [--seeds N] [--json] [--idle]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *scenario == "" || fs.NArg() > 0 || *idle && *asJSON || *seeds < 1 {
		fs.Usage()
		return errUsage
	}
	if len(pacers) == 0 {
		pacers = sim.DefaultPacers()
	}
	sc, err := sim.Load(*scenario)
	if err != nil {
		return err
	}
	results := make([]sim.Result, 0, len(pacers))
	for _, name := range pacers {
		if _, err := sim.NewPacer(name, sc); err != nil {
			return err // before running anything
		}
	}
	enc := json.NewEncoder(stdout)
	for _, name := range pacers {
		for i := range *seeds {
			run := *sc
			run.Seed += uint64(i)
			if *seeds > 1 {
				run.Name = fmt.Sprintf("%s@%d", sc.Name, run.Seed)
			}
			r, err := sim.Run(ctx, &run, name)
			if err != nil {
				return err
			}
			if *asJSON {
				if err := enc.Encode(r); err != nil {
					return fmt.Errorf("sim: writing result: %w", err)
				}
				continue
			}
			results = append(results, r)
		}
	}
	if *asJSON {
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpacer\tdials\tanswered\tconnected\tabandoned\tabandon_rate\tmax_hour_abandon_rate\toccupancy\toccupancy_limit\tefficiency\tmean_agent_wait_s\tsim_wall_s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t%.3f\t\n",
			r.Scenario, r.Pacer, r.Dials, r.Answered, r.Connected, r.Abandoned, r.AbandonRate,
			r.MaxHourAbandonRate, r.Occupancy, r.OccupancyLimit, r.Efficiency, r.MeanAgentWaitS, r.SimWallS)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sim: writing results: %w", err)
	}
	if *seeds > 1 {
		if err := writeSeeds(stdout, sc, results); err != nil {
			return err
		}
	}
	if *idle {
		return writeIdle(stdout, results)
	}
	return nil
}

// writeSeeds sums up the runs of each pacer over seeds: the mean and the worst of efficiency
// and abandonment, and how many runs broke the caps (the target over the run, 1.5 times it
// in a whole hour).
func writeSeeds(w io.Writer, sc *sim.Scenario, results []sim.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "scenario\tpacer\truns\tmean_efficiency\tmin_efficiency\tmean_abandon_rate\tmax_abandon_rate\tmax_hour_abandon_rate\truns_over_cap\t")
	for i := 0; i < len(results); {
		j := i
		var effSum, abSum float64
		minEff, maxAb, maxHour, over := math.Inf(1), 0.0, 0.0, 0
		for ; j < len(results) && results[j].Pacer == results[i].Pacer; j++ {
			r := results[j]
			effSum += r.Efficiency
			abSum += r.AbandonRate
			minEff = min(minEff, r.Efficiency)
			maxAb = max(maxAb, r.AbandonRate)
			maxHour = max(maxHour, r.MaxHourAbandonRate)
			if r.AbandonRate > sc.TargetAbandon || r.MaxHourAbandonRate > 1.5*sc.TargetAbandon {
				over++
			}
		}
		n := float64(j - i)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t\n", sc.Name, results[i].Pacer, j-i,
			effSum/n, minEff, abSum/n, maxAb, maxHour, over)
		i = j
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sim: writing results: %w", err)
	}
	return nil
}

// writeIdle prints where each pacer's agents spent their ready time, as shares of their
// logged-in time (see sim.Idle): ready = on_dial + no_dial, and stale is part of on_dial;
// given_up counts the people lost to the ring timeout (see sim.Result.GivenUp).
func writeIdle(w io.Writer, results []sim.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "scenario\tpacer\tready\ton_dial\tstale\tno_dial\tready_per_call_s\tgiven_up\t")
	for _, r := range results {
		d := r.Idle
		share := func(x float64) float64 { return x / max(d.LoggedIn, 1) }
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t%d\t\n", r.Scenario, r.Pacer,
			share(d.Answer+d.NoDial), share(d.Answer), share(d.Stale), share(d.NoDial),
			(d.Answer+d.NoDial)/float64(max(r.Connected, 1)), r.GivenUp)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sim: writing results: %w", err)
	}
	return nil
}
