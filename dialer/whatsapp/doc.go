// Package whatsapp is Turbina's client for the WhatsApp Cloud API (Meta's Graph API):
// business-initiated voice calls whose media is a pion WebRTC peer connection, call
// permission requests, template messages, and the signed webhooks that report what
// happened to all of them.
//
// The package is a set of building blocks; the engine (package dialer) decides when to
// use them:
//
//   - [Client] sends Graph API requests with a bearer token, retries throttled and
//     server failures with exponential backoff and jitter, holds each phone number to
//     its configured message rate ([TokenBucket]) and classifies every failure as an
//     [*Error] with a [Kind].
//   - [Client.Dial] places a call: it builds an Opus-only SDP offer, fully gathered
//     (the Calls API does not trickle ICE), posts it with action "connect" and returns a
//     [Call] that takes the SDP answer and status updates from webhooks and exposes RTP
//     in both directions. The call is answered by the connect webhook carrying the
//     person's SDP answer or by their first media, whichever comes first; ACCEPTED
//     only confirms it.
//   - [Client.CallPermission] reads Meta's view of a person's call permission and of
//     its limits on permission requests.
//   - [NewWebhookHandler] verifies Meta's GET handshake and the X-Hub-Signature-256 of
//     every POST (bodies up to 3 MiB), parses each change of the body into [Event]
//     values on its own, drops duplicates and events for another phone number or
//     account, and hands the rest to a [Sink] before answering 200. A signed body or
//     change that does not parse is answered 200 and kept in a [Quarantine] (Meta
//     resends any other answer for days); every refusal is logged and counted.
//   - With Config.AppSecret, every Graph call carries appsecret_proof
//     ([AppSecretProof]), which apps with "Require App Secret" demand.
//   - [CallState] applies one call's events in event-time order and idempotently, so
//     duplicated or reordered webhooks still give one outcome per call.
//
// # Idempotency
//
// The Graph API has no idempotency header: a request that reached Meta but whose
// answer was lost cannot be told apart from one that never arrived. Every send in this
// package therefore takes an idempotency key chosen by the caller (the engine's outbox
// row ID) and uses it three ways:
//
//  1. Client-side dedupe: the [Client] remembers the Meta ID returned for each key (in
//     an [IdempotencyStore]; in memory by default) and a second send with the same key
//     returns the first result without a request. Concurrent sends with one key are
//     collapsed into one request.
//  2. The key is sent as biz_opaque_callback_data, which Meta echoes on every call and
//     message-status webhook. A webhook is therefore proof that a send took effect even
//     when its HTTP answer was lost.
//  3. Retries inside one send happen only on answers that mean "not processed"
//     (throughput codes 130429, 131056, 4, 80007, 613, or HTTP 429 with no code that
//     says otherwise; 131056, too many messages to one user, no sooner than
//     [PairRateLimitWait]) or on server failures (5xx, timeouts). The latter are
//     ambiguous; a duplicate is then visible through the echoed key. Long throttles
//     (131048, 138002, 138005) are left to the engine even when Meta answers 429.
//     A call's connect is the exception: a second one would ring the person again,
//     so after an ambiguous failure it is not sent again but settled from the
//     webhooks carrying its key ([DialOptions].SettleWait, [ErrCallInDoubt]).
//
// What the engine must do (outbox): store the transition with its key before calling
// the client; store the returned ID when the call returns. After a crash, an outbox row
// with a key but no ID is "in doubt": the engine must not resend it until it has looked
// for a webhook carrying that key (biz_opaque_callback_data) and waited at least one
// webhook retry window; only then may it resend with the same key. A row whose key has
// been seen on a webhook is done, whatever the HTTP answer was.
//
// # Security
//
// The access token and the app secret are never logged: [Config] and [WebhookConfig]
// redact them in String, GoString and LogValue.
package whatsapp
