// Package demo is Turbina's self-contained demonstration: the world it simulates
// around the engine (a carrier behind the SIP trunk, the WhatsApp Cloud API
// emulator with its users), a team of simulated agents on WebRTC softphones, the
// sample campaign and demo users it seeds, and the report of a headless run.
//
// cmd/turbina's demo subcommand only parses its flags and wires these parts to the
// server; everything the demo does is here.
package demo
