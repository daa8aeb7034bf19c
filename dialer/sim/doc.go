// Package sim is a discrete-event simulator of an outbound campaign on a virtual clock.
//
// It replaces the trunk, the customers and the agents with draws from a Scenario's
// distributions and drives a pacing.Pacer, the same code that paces live campaigns,
// deciding on every event and at least every 250 ms of virtual time. An 8-hour shift runs in
// a fraction of a second; the same scenario, seed and pacer give the same Result to the last
// digit (except SimWallS, the only place the wall clock is read).
//
// The contract (scenario file format, pacer names, result fields) is in SCENARIOS.md of the
// design documents. The package also holds the baseline pacers the predictive one is
// compared with: a fixed ratio and an adaptive dial level modelled on VICIdial.
package sim
