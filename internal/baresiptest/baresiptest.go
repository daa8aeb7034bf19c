// Package baresiptest runs baresip (Debian package baresip) as a real agent's SIP
// phone in tests: it registers with a registrar on 127.0.0.1, answers calls at
// once, sends a sine tone as its microphone, needs no sound device, and takes the
// commands a user would type through its ctrl_tcp module.
package baresiptest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
)

// Options describe the phone's one account.
type Options struct {
	// Registrar is the host:port baresip registers with.
	Registrar string
	// Transport is "udp" (default) or "tcp".
	Transport string
	// User and Password are the account's digest credentials; baresip answers
	// whatever realm the registrar challenges with.
	User, Password string
	// DumpAudio loads the sndfile module, which writes what the phone decodes
	// from the network to a WAV file that HeardLoud reads.
	DumpAudio bool
}

// Phone is one running baresip.
type Phone struct {
	cmd      *exec.Cmd
	dir      string
	ctrlAddr string
	sipAddr  string
	out      *testenv.Output
	done     chan struct{}
}

// config is baresip's configuration: SIP and its control port on loopback,
// G.711 only, a 440 Hz sine as the microphone and aubridge as a sound card
// that needs no device. rtp_stats makes it print packet counts when a call ends.
const config = `poll_method		epoll
sip_listen		127.0.0.1:%d
call_local_timeout	120
call_max_calls		1
audio_player		aubridge,turbina-test
audio_source		ausine,440
audio_alert		aubridge,turbina-test
ausrc_format		s16
ausrc_srate		48000
ausrc_channels		2
auplay_format		s16
audio_buffer		20-160
rtp_stats		yes
rtp_ports		20000-29998
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			ctrl_tcp.so
module_tmp		account.so
module_app		menu.so
ctrl_tcp_listen		127.0.0.1:%d
`

// Start runs baresip registering o's account; it is stopped at the test's
// cleanup, and its output logged if the test failed.
func Start(t testing.TB, o Options) *Phone {
	t.Helper()
	bin := testenv.RequireTool(t, "baresip", "baresip")
	if o.Transport == "" {
		o.Transport = "udp"
	}
	dir := t.TempDir()
	sipPort, ctrlPort := freeSIPPort(t), sipptest.FreePort(t)
	conf := fmt.Sprintf(config, sipPort, ctrlPort)
	if o.DumpAudio {
		conf += "module\t\t\tsndfile.so\nsnd_path\t\t" + dir + "\n"
	}
	accounts := fmt.Sprintf("<sip:%s@%s;transport=%s>;auth_pass=%s;answermode=auto;regint=60;audio_codecs=PCMU,PCMA;mwi=no\n",
		o.User, o.Registrar, o.Transport, o.Password)
	return run(t, bin, dir, conf, accounts, ctrlPort)
}

// run writes baresip's configuration and accounts into dir and starts it there;
// it is stopped at the test's cleanup, and its output logged if the test failed.
func run(t testing.TB, bin, dir, conf, accounts string, ctrlPort int) *Phone {
	t.Helper()
	for name, body := range map[string]string{"config": conf, "accounts": accounts, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// -n: SDP and SIP on loopback only; -t: quit by itself if a test leaves it behind.
	cmd := exec.CommandContext(ctx, bin, "-n", "127.0.0.1", "-f", dir, "-t", "60")
	cmd.Dir = dir
	p := &Phone{cmd: cmd, dir: dir, out: &testenv.Output{}, done: make(chan struct{}),
		ctrlAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ctrlPort))}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start baresip: %v", err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("baresip output:\n%s", sipptest.Tail(p.Output(), 4000))
		}
	})
	return p
}

// freeSIPPort finds a port free for baresip's SIP listener: baresip binds UDP
// and TCP on it and TLS on the next port, and exits at once when any of the
// three is taken (which another process on the machine may have just done).
func freeSIPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		port := sipptest.FreePort(t)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free pair of ports for baresip's SIP and SIP/TLS listeners")
	return 0
}

// Output is what baresip printed so far.
func (p *Phone) Output() string { return p.out.String() }

// Done is closed when baresip has exited.
func (p *Phone) Done() <-chan struct{} { return p.done }

// Kill ends baresip with SIGKILL and waits for it: no BYE, no unregistration,
// as when a phone crashes or loses its network.
func (p *Phone) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// WaitUntil polls cond until it holds. The test fails at once if baresip exits
// first (a waiting test would only time out), or after within, saying the phone
// did not do what.
func (p *Phone) WaitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("baresip exited:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip did not %s within %s:\n%s", what, within, sipptest.Tail(p.Output(), 3000))
		}
	}
}

// Command sends one command to baresip's ctrl_tcp module, as its user would
// type it, and returns the reply. Both go as netstrings ("LEN:{json},").
func (p *Phone) Command(t testing.TB, cmd string) string {
	t.Helper()
	// The control port opens a moment after baresip starts.
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err = net.DialTimeout("tcp", p.ctrlAddr, 3*time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip control port: %v", err)
		}
	}
	defer conn.Close()
	body, _ := json.Marshal(map[string]string{"command": cmd, "token": "test"})
	if _, err := fmt.Fprintf(conn, "%d:%s,", len(body), body); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	rd := bufio.NewReader(conn)
	size, err := rd.ReadString(':')
	if err != nil {
		t.Fatalf("baresip %s: no reply: %v", cmd, err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(size, ":"))
	if err != nil || n > 1<<16 {
		t.Fatalf("baresip %s: reply length %q", cmd, size)
	}
	reply := make([]byte, n+1) // and the closing comma
	if _, err := io.ReadFull(rd, reply); err != nil {
		t.Fatalf("baresip %s: reply: %v", cmd, err)
	}
	return string(reply[:n])
}

// rtpStatsLine is the line rtp_stats prints at the end of a call: packets sent
// and received.
var rtpStatsLine = regexp.MustCompile(`packets:\s+(\d+)\s+(\d+)`)

// RTPStats waits up to within for the packet counts baresip prints when its
// call ends, and returns them.
func (p *Phone) RTPStats(t testing.TB, within time.Duration) (sent, received int) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if m := rtpStatsLine.FindStringSubmatch(p.Output()); m != nil {
			sent, _ = strconv.Atoi(m[1])
			received, _ = strconv.Atoi(m[2])
			return sent, received
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip printed no RTP stats:\n%s", sipptest.Tail(p.Output(), 3000))
		}
	}
}

// HeardLoud returns how many 20 ms frames of what baresip decoded from the
// network carry sound rather than silence, and how many frames there were. It
// needs Options.DumpAudio and one call.
func (p *Phone) HeardLoud(t testing.TB) (loud, frames int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.dir, "dump-*-dec.wav"))
	if len(files) != 1 {
		t.Fatalf("baresip decode dumps: %v, want one", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 44 {
		t.Fatalf("decode dump of %d bytes", len(data))
	}
	pcm := data[44:] // 8 kHz s16le mono after the RIFF header
	const frame = 160 * 2
	for off := 0; off+frame <= len(pcm); off += frame {
		frames++
		peak := 0
		for i := off; i < off+frame; i += 2 {
			v := int(int16(binary.LittleEndian.Uint16(pcm[i:])))
			peak = max(peak, v, -v)
		}
		if peak > 4000 {
			loud++
		}
	}
	return loud, frames
}
