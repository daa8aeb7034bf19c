// Package kpi defines the contact centre's figures once, as pure functions over
// counts and durations, so that every place that shows one (the supervisor's
// wallboard, the demo's report) means the same thing by it.
//
// The definitions are the usual ones of the trade (COPC, ICMI; the US TSR and Ofcom
// for abandonment). Each function answers 0 when its denominator is not positive:
// a figure over nothing is shown as none rather than as a division by zero.
package kpi

import "time"

// Occupancy is the share of the agents' available time spent handling contacts:
// (talk + wrap-up) / (talk + wrap-up + idle), where idle is time signed in and
// ready for a call but without one. Pauses (breaks, training) are not available
// time and count in no term, so a team that pauses a lot is not shown as busy.
// Time reserved for an answered call whose audio is being connected is handling
// time: the person is already on the line.
func Occupancy(talk, wrap, idle time.Duration) float64 {
	handling := talk + wrap
	return ratio(float64(handling), float64(handling+max(idle, 0)))
}

// OccupancyNow is Occupancy at one instant, each agent weighing one: agents
// handling a contact (reserved for it, talking or in wrap-up) over those and the
// agents ready for one. Paused agents count in neither.
func OccupancyNow(handling, ready int) float64 {
	return ratio(float64(handling), float64(handling+max(ready, 0)))
}

// AbandonRate is abandoned calls over calls answered by a person (abandoned ones
// included): the rate the US TSR (over 30 days) and Ofcom (over 24 hours) cap.
// Calls answered by a machine are not in either term.
func AbandonRate(abandoned, answered int) float64 {
	return ratio(float64(abandoned), float64(answered))
}

// AnswerRate is attempts that reached the person (a call answered by a person, a
// template sent) over attempts placed.
func AnswerRate(reached, attempts int) float64 {
	return ratio(float64(reached), float64(attempts))
}

// AHT (TMA, tempo médio de atendimento) is the average handle time of a call:
// the handle time (talk, hold and wrap-up) of the calls handled over their number.
func AHT(handle time.Duration, calls int) time.Duration {
	if calls <= 0 {
		return 0
	}
	return handle / time.Duration(calls)
}

// ASA (TME, tempo médio de espera) is the average speed of answer: the total wait
// of answered people from their answer until an agent is connected, over the
// number of calls connected.
func ASA(wait time.Duration, calls int) time.Duration {
	if calls <= 0 {
		return 0
	}
	return wait / time.Duration(calls)
}

// ServiceLevel is the share of connected calls whose wait was within the
// threshold (the wallboard uses 2 s, the abandon prompt's deadline).
func ServiceLevel(withinThreshold, calls int) float64 {
	return ratio(float64(withinThreshold), float64(calls))
}

func ratio(n, d float64) float64 {
	if d <= 0 {
		return 0
	}
	return n / d
}
