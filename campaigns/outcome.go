package campaigns

import (
	"slices"
	"strings"
)

// Outcome is how one attempt on one channel ended: the vocabulary of the contact's
// journey (journey.go), of the attempts the storage keeps and of the reports. It is
// defined here once; every package spells outcomes with these constants.
type Outcome string

// Attempt outcomes, across channels.
const (
	// OutcomeConnected: a person answered and was bridged to an agent.
	OutcomeConnected Outcome = "connected"
	// OutcomeAbandoned: a person answered and no agent was free within the patience,
	// or the agent the person was put through to vanished (its audio went away).
	OutcomeAbandoned Outcome = "abandoned"
	// OutcomeMachine: an answering machine answered; the rung is tried again.
	OutcomeMachine Outcome = "machine"
	// OutcomeMachineNext: an answering machine answered and the campaign moves such
	// contacts to the next rung at once.
	OutcomeMachineNext Outcome = "machine_next"
	// OutcomeMachineMessage: an answering machine answered and got the campaign's
	// message; the contact moves to the next rung.
	OutcomeMachineMessage Outcome = "machine_message"
	// OutcomeBusy: the line was busy (SIP 486, 600).
	OutcomeBusy Outcome = "busy"
	// OutcomeNoAnswer: it rang out (ring timeout, SIP 480, 408; WhatsApp no answer).
	OutcomeNoAnswer Outcome = "no_answer"
	// OutcomeRejected: the person declined (SIP 603; WhatsApp call rejected).
	OutcomeRejected Outcome = "rejected"
	// OutcomeInvalidNumber: the network says the number does not exist (SIP 404, 484, 410).
	OutcomeInvalidNumber Outcome = "invalid_number"
	// OutcomeTrunkFault: every trunk tried failed this call (SIP 402, 403, 421 and the
	// other 4xx the trunk's response table does not give the person, 5xx, refused
	// credentials, no response): never the person's answer.
	OutcomeTrunkFault Outcome = "trunk_fault"
	// OutcomeTrunkDown: the call's trunk was found down while the call was under way
	// (ringing, or its INVITE unanswered): the person never had a chance to answer,
	// and the contact moves to its next channel at once.
	OutcomeTrunkDown Outcome = "trunk_down"
	// OutcomeChannelDown: the channel could not take the call at all (every trunk's
	// circuit open); no attempt reached the network.
	OutcomeChannelDown Outcome = "channel_down"
	// OutcomeChannelBusy: the channel was at capacity; no attempt reached the network.
	OutcomeChannelBusy Outcome = "channel_busy"
	// OutcomeNoChannel: the rung's channel is not configured on this server (no
	// WhatsApp account, no trunk); the rung is skipped.
	OutcomeNoChannel Outcome = "no_channel"
	// OutcomeMediaFailed: the call was answered but no media could be set up.
	OutcomeMediaFailed Outcome = "media_failed"
	// OutcomeInterrupted: Turbina stopped while the attempt was under way.
	OutcomeInterrupted Outcome = "interrupted"
	// OutcomeNoPermission: WhatsApp refuses the call until the user grants permission.
	OutcomeNoPermission Outcome = "no_permission"
	// OutcomeNotOnWhatsApp: the number has no WhatsApp account.
	OutcomeNotOnWhatsApp Outcome = "not_on_whatsapp"
	// OutcomeSent: a template message was accepted for delivery.
	OutcomeSent Outcome = "sent"
	// OutcomeInDoubt: a template's request may have reached WhatsApp, but a crash
	// (or a broken connection) took its answer: not counted sent until its status
	// webhook says so, and not sent again.
	OutcomeInDoubt Outcome = "in_doubt"
	// OutcomeSendFailed: a template message could not be sent.
	OutcomeSendFailed Outcome = "send_failed"
	// OutcomeDelivered: WhatsApp reported a sent template delivered to the phone.
	OutcomeDelivered Outcome = "delivered"
	// OutcomeRead: WhatsApp reported a sent template read.
	OutcomeRead Outcome = "read"
	// OutcomeResumed: a WhatsApp call that took up a conversation its SIP call lost
	// to the trunk (the attempt's resumed_from), answered and put back through to the
	// same agent. The conversation is the SIP attempt's, recorded connected; this
	// one is not counted again as answered, connected or reached.
	OutcomeResumed Outcome = "resumed"
	// OutcomeCanceled: given up by our side before the answer, not by a stop or a
	// crash (interrupted): an agent who stopped waiting for a call back on WhatsApp
	// hung up, and the call was withdrawn. It did not reach the person.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeInboundMissed: a person's own call to the business (inbound) that no
	// agent took: they waited the longest inbound wait and heard the apology, or
	// hung up in the queue. The contact is called back first.
	OutcomeInboundMissed Outcome = "inbound_missed"
)

// ReachedOutcomes are the outcomes that mean the person was reached: answered by a
// person (connected or abandoned) or a message that left for them.
func ReachedOutcomes() []Outcome {
	return []Outcome{OutcomeConnected, OutcomeAbandoned, OutcomeSent, OutcomeDelivered, OutcomeRead}
}

// AnsweredOutcomes are the outcomes of a call a person answered, whether or not an
// agent took it.
func AnsweredOutcomes() []Outcome { return []Outcome{OutcomeConnected, OutcomeAbandoned} }

// UnplacedOutcomes are the outcomes of attempts that never reached the network
// (the channel was down, full or not configured): they are not dials.
func UnplacedOutcomes() []Outcome {
	return []Outcome{OutcomeChannelDown, OutcomeChannelBusy, OutcomeNoChannel}
}

// UnrungOutcomes are the outcomes of calls that could not have rung the person's
// phone: never placed, refused by WhatsApp before ringing, or a number that does
// not exist. They do not count against a number's attempt limits; the
// RingCountedOutcomes count only if the network said the phone rang.
func UnrungOutcomes() []Outcome {
	return append(UnplacedOutcomes(), OutcomeNoPermission, OutcomeNotOnWhatsApp, OutcomeInvalidNumber)
}

// RingCountedOutcomes are the outcomes of calls the trunk failed, which may or may
// not have rung the person's phone first: they count against a number's attempt
// limits only if the network said the phone rang (the storage checks ring_at), as
// a call that rang disturbed the person whoever ended it.
func RingCountedOutcomes() []Outcome { return []Outcome{OutcomeTrunkFault, OutcomeTrunkDown} }

// Reached reports whether the outcome means the person was reached (ReachedOutcomes).
func (o Outcome) Reached() bool { return slices.Contains(ReachedOutcomes(), o) }

// Answered reports whether a person answered the call (AnsweredOutcomes).
func (o Outcome) Answered() bool { return slices.Contains(AnsweredOutcomes(), o) }

// Outcomes lists every outcome, in the order of their declaration.
func Outcomes() []Outcome {
	return []Outcome{OutcomeConnected, OutcomeAbandoned, OutcomeMachine, OutcomeMachineNext, OutcomeMachineMessage,
		OutcomeBusy, OutcomeNoAnswer, OutcomeRejected, OutcomeInvalidNumber, OutcomeTrunkFault, OutcomeTrunkDown,
		OutcomeChannelDown, OutcomeChannelBusy, OutcomeNoChannel, OutcomeMediaFailed, OutcomeInterrupted, OutcomeNoPermission,
		OutcomeNotOnWhatsApp, OutcomeSent, OutcomeInDoubt, OutcomeSendFailed, OutcomeDelivered, OutcomeRead, OutcomeResumed, OutcomeCanceled,
		OutcomeInboundMissed}
}

// SQLList renders outcomes as an SQL IN list of string literals, e.g. ('sent','read'):
// reports count by the vocabulary above instead of spelling it again. The outcomes
// are constants of this package, never input, so quoting them is safe.
func SQLList(outcomes ...Outcome) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, o := range outcomes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + strings.ReplaceAll(string(o), "'", "''") + "'")
	}
	b.WriteByte(')')
	return b.String()
}
