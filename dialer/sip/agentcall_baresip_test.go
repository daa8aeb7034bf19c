package sip

import (
	"bufio"
	"bytes"
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
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
)

// baresipPhone is a real SIP phone (Debian's baresip) registered to a
// registrar, set to answer calls at once, with a sine tone as its
// microphone and no sound device. What it hears is dumped to WAV files by its
// sndfile filter.
type baresipPhone struct {
	cmd      *exec.Cmd
	dir      string
	ctrlAddr string
	out      *syncBuffer
	done     chan struct{}
	// SIPPort is where the phone listens.
	SIPPort int
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBaresip runs baresip registering user/pass at registrar over
// transport ("udp" or "tcp"). It is stopped at cleanup.
func startBaresip(t testing.TB, registrar string, user, pass, transport string) *baresipPhone {
	t.Helper()
	bin := testenv.RequireTool(t, "baresip", "baresip")
	dir := t.TempDir()
	port, ctrlPort := sipptest.FreePort(t), sipptest.FreePort(t)
	config := fmt.Sprintf(`poll_method		epoll
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
snd_path		%s
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			sndfile.so
module			ctrl_tcp.so
module_tmp		account.so
module_app		menu.so
ctrl_tcp_listen		127.0.0.1:%d
`, port, dir, ctrlPort)
	accounts := fmt.Sprintf("<sip:%s@%s;transport=%s>;auth_pass=%s;answermode=auto;regint=60;audio_codecs=PCMU,PCMA;mwi=no\n",
		user, registrar, transport, pass)
	for name, body := range map[string]string{"config": config, "accounts": accounts, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// -t: baresip quits by itself should a test leave it behind.
	cmd := exec.CommandContext(ctx, bin, "-n", "127.0.0.1", "-f", dir, "-t", "60")
	cmd.Dir = dir
	p := &baresipPhone{cmd: cmd, dir: dir, out: &syncBuffer{}, done: make(chan struct{}), SIPPort: port,
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
			t.Logf("baresip output:\n%s", sipptest.Tail(p.out.String(), 4000))
		}
	})
	return p
}

// kill ends baresip with SIGKILL, as a crash or a pulled cable would: no BYE,
// no unregistration.
func (p *baresipPhone) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// Output is what baresip printed so far.
func (p *baresipPhone) Output() string { return p.out.String() }

// waitRegistered waits until the registrar holds a binding for agentID.
func waitRegistered(t testing.TB, r *Registrar, agentID int64, p *baresipPhone, within time.Duration) Binding {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if b, ok := r.Lookup(agentID); ok {
			return b
		}
		select {
		case <-p.done:
			t.Fatalf("baresip exited:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip did not register within %s:\n%s", within, sipptest.Tail(p.Output(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// command sends one command to baresip's ctrl_tcp module (a JSON netstring),
// as its user would type it, and returns its reply.
func (p *baresipPhone) command(t testing.TB, cmd string) string {
	t.Helper()
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err = net.Dial("tcp", p.ctrlAddr); err == nil {
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
	// The reply is a netstring too: "LEN:{...},".
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
	reply := make([]byte, n+1)
	if _, err := io.ReadFull(rd, reply); err != nil {
		t.Fatalf("baresip %s: reply: %v", cmd, err)
	}
	return string(reply[:n])
}

// rtpStats reads the packet counts baresip prints when a call ends (rtp_stats).
func (p *baresipPhone) rtpStats(t testing.TB, within time.Duration) (sent, received int) {
	t.Helper()
	re := regexp.MustCompile(`packets:\s+(\d+)\s+(\d+)`)
	deadline := time.Now().Add(within)
	for {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			sent, _ = strconv.Atoi(m[1])
			received, _ = strconv.Atoi(m[2])
			return sent, received
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip printed no RTP stats:\n%s", sipptest.Tail(p.Output(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heardLoud returns how many 20 ms frames of what baresip decoded from the
// network (its sndfile dump) carry sound rather than silence.
func (p *baresipPhone) heardLoud(t testing.TB) (loud, frames int) {
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
