// Package sipptest runs sipp (Debian package sip-tester) as a real SIP peer in tests:
// a carrier that answers, rings out, is busy or fails, on 127.0.0.1 only.
package sipptest

import (
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/testenv"
)

// Options tune one sipp run.
type Options struct {
	// Transport is sipp's -t value: u1 (UDP, default) or t1 (TCP).
	Transport string
	// Calls is sipp's -m: it exits after this many calls (default 1).
	Calls int
	// Port is the SIP port; 0 picks a free one.
	Port int
	// Timeout is sipp's global -timeout (default 40 s): no run outlives it.
	Timeout time.Duration
	// ContactPort and ContactTransport fill the scenario keys [contact_port] and
	// [contact_transport] (default: Port and the transport), for scenarios whose
	// Contact must name a relay in front of sipp.
	ContactPort      int
	ContactTransport string
	// Extra are more sipp arguments.
	Extra []string
	// Netns runs sipp inside this network namespace (ip netns exec), listening
	// on Host, which is then required; Port defaults to 5060 there, where no
	// other test binds. For link-cut drills with internal/netlab.
	Netns string
	Host  string
	// Vars fill {{name}} placeholders in the scenario text before sipp reads
	// it, for what sipp cannot substitute itself (its regexps take no
	// keywords).
	Vars map[string]string
	// OutOfCall is a scenario of this package (by file name) for the
	// messages that belong to none of sipp's calls (-oocsf): with a UAC
	// scenario, requests that the peer starts.
	OutOfCall string
}

// Proc is one running sipp.
type Proc struct {
	cmd  *exec.Cmd
	out  *testenv.Output
	done chan struct{}
	err  error
	// Port and Addr are where sipp listens for SIP.
	Port int
	Addr string
}

// FreePort returns a port free for both UDP and TCP on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func portBusy(port int, tcp bool) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if tcp {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return true
		}
		l.Close()
		return false
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return true
	}
	pc.Close()
	return false
}

// scenarios are the carrier behaviours the tests play: answer, busy, no answer,
// 404, 503, silent, digest challenges, remote BYE, RTP, OPTIONS.
//
//go:embed scenarios/*.xml
var scenarios embed.FS

// Start runs sipp as a UAS on 127.0.0.1 with one of the scenarios in this package
// (by file name, e.g. "answer.xml") and waits until it listens. It is killed at
// the test's cleanup. Two µ-law 8 kHz files sit in sipp's working directory for
// scenarios that stream RTP: tone.wav (a second of tone, looped it sounds like a
// voicemail greeting) and hello.wav (a short "hello" and then silence, as a person
// answers). voicemail.wav is an answering machine's greeting, beep and silence.
func Start(t testing.TB, scenario string, o Options) *Proc {
	t.Helper()
	bin := testenv.RequireTool(t, "sipp", "sip-tester")
	if o.Netns != "" {
		if o.Host == "" {
			t.Fatal("sipptest: Netns needs Host")
		}
		if o.Port == 0 {
			o.Port = 5060
		}
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Transport == "" {
		o.Transport = "u1"
	}
	if o.Calls == 0 {
		o.Calls = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 40 * time.Second
	}
	if o.ContactTransport == "" {
		o.ContactTransport = map[byte]string{'u': "udp", 't': "tcp"}[o.Transport[0]]
	}
	body, err := scenarios.ReadFile("scenarios/" + scenario)
	if err != nil {
		t.Fatalf("sipp scenario %s: %v", scenario, err)
	}
	dir := t.TempDir()
	sf := filepath.Join(dir, scenario)
	if err := os.WriteFile(sf, fillVars(body, o.Vars), 0o644); err != nil {
		t.Fatal(err)
	}
	if o.OutOfCall != "" {
		ooc, err := scenarios.ReadFile("scenarios/" + o.OutOfCall)
		if err != nil {
			t.Fatalf("sipp scenario %s: %v", o.OutOfCall, err)
		}
		file := filepath.Join(dir, o.OutOfCall)
		if err := os.WriteFile(file, fillVars(ooc, o.Vars), 0o644); err != nil {
			t.Fatal(err)
		}
		o.Extra = append([]string{"-oocsf", file}, o.Extra...)
	}
	WriteToneWAV(t, filepath.Join(dir, "tone.wav"))
	WriteGreetingWAV(t, filepath.Join(dir, "hello.wav"))
	WriteVoicemailWAV(t, filepath.Join(dir, "voicemail.wav"))
	// A free port is free only until someone else binds it: tests run in parallel,
	// so when sipp loses its port it is started again (on new ports unless the
	// caller chose them).
	explicit := o.Port != 0
	for try := 1; ; try++ {
		run := o
		if !explicit {
			run.Port = FreePort(t)
		}
		if run.ContactPort == 0 {
			run.ContactPort = run.Port
		}
		p, err := launch(t, bin, dir, sf, run)
		if err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) || try == 5 {
			t.Fatalf("sipp %s: %v", scenario, err)
		}
		time.Sleep(time.Duration(try) * 100 * time.Millisecond)
	}
}

// fillVars replaces the {{name}} placeholders of a scenario.
func fillVars(body []byte, vars map[string]string) []byte {
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(body)))
}

// errPortTaken means sipp could not bind a port another process took first.
var errPortTaken = errors.New("port taken")

// launch starts one sipp and waits until it serves its port.
func launch(t testing.TB, bin, dir, scenarioFile string, o Options) (*Proc, error) {
	t.Helper()
	mediaPort := 6000
	if o.Netns == "" {
		mediaPort = FreePort(t)
	}
	args := []string{
		"-sf", scenarioFile, "-i", o.Host, "-p", strconv.Itoa(o.Port), "-t", o.Transport,
		"-m", strconv.Itoa(o.Calls), "-timeout", strconv.Itoa(int(o.Timeout.Seconds())) + "s", "-nostdin",
		"-mi", o.Host, "-mp", strconv.Itoa(mediaPort),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-key", "contact_port", strconv.Itoa(o.ContactPort), "-key", "contact_transport", o.ContactTransport,
	}
	args = append(args, o.Extra...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	if o.Netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", o.Netns, bin}, args...)...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=dumb")
	p := &Proc{cmd: cmd, out: &testenv.Output{}, done: make(chan struct{}), Port: o.Port,
		Addr: net.JoinHostPort(o.Host, strconv.Itoa(o.Port))}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start: %w", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	// exited explains an early exit; nil when sipp simply did its calls already.
	exited := func() error {
		if p.err == nil {
			return nil
		}
		if strings.Contains(p.out.String(), "already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, Tail(p.out.String(), 300))
		}
		return fmt.Errorf("exited at start: %v\n%s", p.err, Tail(p.out.String(), 2000))
	}
	deadline := time.Now().Add(5 * time.Second)
	busy := func() bool { return portBusy(o.Port, o.Transport[0] == 't') }
	if o.Netns != "" {
		busy = func() bool { return listensIn(o.Netns, o.Port, o.Transport[0] == 't') }
	}
	for !busy() {
		select {
		case <-p.done:
			cancel()
			if err := exited(); err != nil {
				return nil, err
			}
			return p, nil
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			<-p.done
			return nil, fmt.Errorf("did not bind port %d", o.Port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The port being busy may be another process's doing: sipp, failing to bind,
	// exits at once.
	select {
	case <-p.done:
		if err := exited(); err != nil {
			cancel()
			return nil, err
		}
	case <-time.After(50 * time.Millisecond):
	}
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p, nil
}

// listensIn reports whether something listens on port inside network namespace ns.
func listensIn(ns string, port int, tcp bool) bool {
	flags := "-Hlun"
	if tcp {
		flags = "-Hltn"
	}
	out, err := exec.Command("ss", "-N", ns, flags, "sport = :"+strconv.Itoa(port)).Output()
	return err == nil && len(bytes.TrimSpace(out)) > 0
}

// Wait waits for sipp to finish its calls and fails the test unless every call
// followed the scenario (exit status 0).
func (p *Proc) Wait(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("sipp did not finish within %s\n%s", within, Tail(p.out.String(), 3000))
	}
	if p.err != nil {
		errs, _ := os.ReadFile(filepath.Join(p.cmd.Dir, "errors.log"))
		t.Fatalf("sipp failed: %v\n%s\n%s", p.err, Tail(p.out.String(), 3000), errs)
	}
}

// Stop kills sipp and waits for it.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Output is what sipp printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// WriteToneWAV writes one second of a µ-law square tone, 8 kHz mono, for sipp's
// rtp_stream.
func WriteToneWAV(t testing.TB, path string) {
	t.Helper()
	writeULawWAV(t, path, squareTone(8000))
}

// WriteGreetingWAV writes what a person answering sounds like to an
// answering-machine detector: 0.3 s of silence, a 0.4 s word, 2.3 s of silence.
func WriteGreetingWAV(t testing.TB, path string) {
	t.Helper()
	data := make([]byte, 0, 24000)
	data = append(data, silence(2400)...)
	data = append(data, squareTone(3200)...)
	data = append(data, silence(18400)...)
	writeULawWAV(t, path, data)
}

// WriteVoicemailWAV writes what an answering machine sounds like: a 3 s greeting
// with short pauses, then 6 s of silence after the beep.
func WriteVoicemailWAV(t testing.TB, path string) {
	t.Helper()
	var data []byte
	for range 5 {
		data = append(data, squareTone(4400)...) // 0.55 s of speech
		data = append(data, silence(800)...)     // 0.1 s between words
	}
	data = append(data, squareTone(1600)...) // the beep
	data = append(data, silence(48000)...)
	writeULawWAV(t, path, data)
}

// squareTone is n µ-law samples of a loud 400 Hz square wave.
func squareTone(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		if (i/10)%2 == 0 {
			data[i] = 0x20
		} else {
			data[i] = 0xA0
		}
	}
	return data
}

// silence is n µ-law samples of silence.
func silence(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }

func writeULawWAV(t testing.TB, path string, data []byte) {
	t.Helper()
	n := len(data)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+26+8+n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(18), uint16(7), uint16(1), uint32(8000), uint32(8000), uint16(1), uint16(8), uint16(0)} {
		_ = binary.Write(&b, binary.LittleEndian, v) // fmt chunk: µ-law (7), mono, 8 kHz, 8 bits
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Message is one SIP message of sipp's message log (sipp -trace_msg
// -message_file PATH).
type Message struct {
	// At is when sipp logged it, on the local clock.
	At time.Time
	// Received is true for a message sipp received (the peer under test sent
	// it), false for one sipp sent.
	Received bool
	// First is the request or status line; CallID the Call-ID header.
	First, CallID string
}

// messageHead starts each message of sipp's log: a dashed line ending in its
// local time, then its direction.
var messageHead = regexp.MustCompile(`(?m)^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\n(?:UDP|TCP) message (sent|received)[^\n]*\n\s*`)

var callIDHeader = regexp.MustCompile(`(?mi)^(?:Call-ID|i): *([^\r\n]+)`)

// ReadMessages reads sipp's message log at path, in the order sipp logged
// the messages. Read it once sipp has stopped: sipp buffers its log.
func ReadMessages(t testing.TB, path string) []Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	heads := messageHead.FindAllStringSubmatchIndex(log, -1)
	out := make([]Message, 0, len(heads))
	for i, h := range heads {
		end := len(log)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		body := log[h[1]:end]
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", log[h[2]:h[3]], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		m := Message{At: at, Received: log[h[4]:h[5]] == "received"}
		m.First, _, _ = strings.Cut(body, "\n")
		m.First = strings.TrimSpace(m.First)
		if id := callIDHeader.FindStringSubmatch(body); id != nil {
			m.CallID = strings.TrimSpace(id[1])
		}
		out = append(out, m)
	}
	return out
}

// NewInvites are the INVITEs of new calls among msgs that sipp received, in
// order: a retransmission or a re-INVITE (a Call-ID seen before) is not one.
func NewInvites(msgs []Message) []Message {
	seen := map[string]bool{}
	var out []Message
	for _, m := range msgs {
		if m.Received && strings.HasPrefix(m.First, "INVITE ") && !seen[m.CallID] {
			seen[m.CallID] = true
			out = append(out, m)
		}
	}
	return out
}
