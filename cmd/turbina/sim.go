package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: turbina sim --scenario FILE [--pacer NAME]... [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *scenario == "" || fs.NArg() > 0 {
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
		r, err := sim.Run(ctx, sc, name)
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
	return nil
}
