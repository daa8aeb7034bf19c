// Package pacing decides how many calls a campaign should dial now.
//
// The package is pure: no I/O, no goroutines, no wall clock. The caller passes the time, a
// Snapshot of the campaign's agents and of the dials in flight, and reports every Outcome;
// the same code paces live campaigns and runs inside the simulator (package dialer/sim) on a
// virtual clock.
//
// A Controller paces one campaign in one of three modes. Preview never dials by itself.
// Progressive keeps one line per free agent. Predictive forecasts, at a few horizons spanning
// the time a new dial takes to be answered, how many agents will be free (from talk and
// wrap-up distributions learned per channel and conditioned on how long each agent has
// already been busy) and how many people will have answered (from the learned answer
// probability and ring-time distribution, conditioned on how long each dial has already
// rung). It places the largest number of dials such that the last of them, if a person
// answers it, finds no agent within the patience with a probability under a threshold.
// Small campaigns (a few dozen busy agents and dials in flight at most) have the counts
// taken exactly, as sums of independent yes-or-no events; large ones as normal. The
// threshold is steered by the abandonment measured so far, so that the run stays under the
// target and no hour goes above 1.5 times it; when the allowance is spent the threshold falls
// to zero and predictive becomes progressive (counted exactly, it keeps placing only dials
// whose risk is all but nil, such as a line for a free agent whose dial has rung too long).
// A run guard keeps the campaign's abandon rate so far under the target at every moment.
//
// Predictive also chooses how long a dial rings (Controller.RingTimeout): past some ring, a
// person is less likely to answer in the next second than a fresh dial yields people per
// second of line, and the agent waiting on that line is better served by a new one. The
// cutoff is learned per channel from ring times, never under Settings.MinRingTimeout
// (15 s by default, the floor of the US Telemarketing Sales Rule and of Ofcom), and grows
// while people answer its last second faster than its rate. People who would have answered
// later are left for a retry.
//
// Supervisor limits (Settings) always win over every pacer: pause, maximum lines in flight
// and maximum dial ratio.
package pacing
