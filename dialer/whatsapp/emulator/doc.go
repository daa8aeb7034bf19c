// Package emulator is a test double of Meta's WhatsApp Cloud API: an HTTP server on
// loopback that answers the Graph API paths Turbina uses as Meta documents them, and
// plays the WhatsApp user behind each destination number.
//
// It implements:
//
//   - POST /{version}/{phone-number-id}/calls with actions connect, pre_accept, accept,
//     reject and terminate. A connect is answered by a real pion peer (the user's
//     phone): RINGING, then, when the user picks up, the SDP answer on a signed
//     "calls" webhook followed by ACCEPTED (or REJECTED with no answer), and a
//     terminate with the duration. Once accepted the peer sends Opus frames every
//     20 ms and counts what it receives. A connect can be placed with its answer
//     lost (a 500, or the connection closed).
//   - GET /{version}/{phone-number-id}/call_permissions?user_wa_id=… with Meta's
//     limits on permission requests (1 in 24 h, 2 in 7 days, reset by a connected
//     call; 138009 past them, 138017 to a permanent grant).
//   - POST /{version}/{phone-number-id}/messages for template, interactive
//     call_permission_request and text messages, with sent → delivered → read (or
//     failed) status webhooks and permission replies.
//   - GET /{version}/{waba-id}/message_templates with cursor paging.
//
// Each destination number follows a [Behaviour] set with [Emulator.Script]: accept
// after a delay, reject, no answer, a Graph error (138006, 131026, 132001…), bursts of
// 429 (130429) or 5xx, slow answers, duplicated or reordered webhooks. Requests need
// the configured bearer token; errors have Graph's JSON shape; every request is
// recorded for assertions ([Emulator.Requests]).
//
// It is not a second implementation of Turbina: the client under test is the real one,
// pointed at [Emulator.URL].
package emulator
