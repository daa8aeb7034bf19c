// Package campaigns owns what a sales team creates: campaigns, their contacts, the
// CSV import that turns a spreadsheet export into contacts, and the policy that decides
// whether and on which channel a contact may be tried next (calling windows, the
// escalation ladder, retries, do-not-call, cron schedules).
//
// It knows nothing about SIP, RTP or storage: the engine in package dialer asks it
// questions and package storage persists what it produces.
package campaigns
