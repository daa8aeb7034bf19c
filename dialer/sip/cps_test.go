package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// TestPacerWindow drives the pacer as Dial and attempt do, with a fake clock
// and writes that start late and take time, and checks the carrier's view:
// between the end of one INVITE's write and the start of the one max_cps later
// there is always more than a second, so no sliding second holds more than
// max_cps. Slots 1/cps apart alone fail this as soon as the first INVITE of a
// second leaves late and the last does not.
func TestPacerWindow(t *testing.T) {
	tests := []struct {
		name   string
		cps    float64
		limit  int
		jitter func(i int) time.Duration // from the slot to the write's start
		write  func(i int) time.Duration // how long the write takes
	}{
		{"first late", 20, 20, func(i int) time.Duration {
			if i%20 == 0 {
				return 30 * time.Millisecond
			}
			return 0
		}, func(int) time.Duration { return 0 }},
		{"slow writes", 20, 20, func(i int) time.Duration { return time.Duration(i%7) * 3 * time.Millisecond },
			func(i int) time.Duration { return time.Duration(i%5) * 2 * time.Millisecond }},
		{"fractional", 2.5, 2, func(i int) time.Duration { return time.Duration(i%3) * 10 * time.Millisecond },
			func(int) time.Duration { return time.Millisecond }},
		{"below one", 0.5, 1, func(int) time.Duration { return 0 }, func(int) time.Duration { return 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(tt.cps)
			now := time.Unix(1000, 0)
			var marks []sendMark
			for i := range 100 {
				// Dial waits for its slot; the write starts a little later.
				slotAt := now.Add(p.reserve(now))
				at := slotAt.Add(tt.jitter(i))
				var m *sendMark
				for {
					var wait time.Duration
					if m, wait = p.admit(at); m != nil {
						break
					}
					if wait <= 0 {
						t.Fatalf("send %d: neither admitted nor told to wait", i)
					}
					at = at.Add(wait)
				}
				p.sent(m, at.Add(tt.write(i)))
				marks = append(marks, *m)
				now = slotAt
			}
			for i := tt.limit; i < len(marks); i++ {
				if gap := marks[i].start.Sub(marks[i-tt.limit].end); gap <= time.Second {
					t.Fatalf("INVITE %d started %s after INVITE %d was written: %d INVITEs within a second at max_cps %g",
						i, gap, i-tt.limit, tt.limit+1, tt.cps)
				}
			}
			// The rate is not given away: 100 INVITEs take about 100/cps (with
			// whole INVITEs per second: max_cps 2.5 allows 2 in any second).
			rate := min(tt.cps, float64(tt.limit))
			if span, want := marks[len(marks)-1].start.Sub(marks[0].start), time.Duration(float64(len(marks)-1)/rate*float64(time.Second)); span > want*11/10+100*time.Millisecond {
				t.Errorf("100 INVITEs took %s, want about %s", span, want)
			}
		})
	}
	if m, wait := newPacer(0).admit(time.Unix(1, 0)); m == nil || wait != 0 {
		t.Errorf("unlimited pacer: admit = %v, %s", m, wait)
	}
}

// TestCPSAtCarrier dials far faster than max_cps through a recorder in front
// of a sipp carrier that answers at once, and checks with the kernel's receive
// timestamps that no sliding second held more than max_cps new INVITEs.
func TestCPSAtCarrier(t *testing.T) {
	t.Parallel()
	const (
		maxCPS = 20
		calls  = 70
	)
	sipp := sipptest.Start(t, "cps-answer.xml", sipptest.Options{Calls: calls, Timeout: 60 * time.Second})
	rec := newUDPRecorder(t, sipp.Addr)
	tc := udpTrunk("carrier", rec.addr(), 0)
	tc.MaxCPS = maxCPS
	o := newTestOriginator(t, testConfig(tc))

	// Eight dialers at once, each Dial returning as soon as its slot comes:
	// the engine asks for calls much faster than the trunk may carry them.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		placed []*Call
		errs   []error
		next   = make(chan int, calls)
	)
	for i := range calls {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := o.Dial(context.Background(), DialRequest{To: fmt.Sprintf("+346000%05d", i)})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					placed = append(placed, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, c := range placed {
		if r := waitResult(t, c, 15*time.Second); r.Outcome != OutcomeAnswered {
			t.Errorf("call %s: %s %d %s", r.CallID, r.Outcome, r.Status, r.Reason)
		}
	}
	sipp.Wait(t, 20*time.Second)

	at := rec.invites()
	if len(at) != calls {
		t.Fatalf("carrier received %d new INVITEs, want %d", len(at), calls)
	}
	for i := maxCPS; i < len(at); i++ {
		if gap := at[i].Sub(at[i-maxCPS]); gap < time.Second {
			t.Errorf("INVITEs %d to %d (%d of them) reached the carrier within %s, max_cps %d",
				i-maxCPS, i, maxCPS+1, gap, maxCPS)
		}
	}
	// Dialling was not simply slow: the trunk ran near its limit.
	if span, want := at[len(at)-1].Sub(at[0]), time.Duration(calls-1)*time.Second/maxCPS; span > want*3/2 {
		t.Errorf("%d INVITEs took %s at the carrier, want about %s", calls, span, want)
	}
}

// udpRecorder stands between Turbina and a UDP carrier: it relays datagrams
// both ways (one socket per peer towards the carrier, so its answers find
// their way back) and keeps the kernel's receive time of every request.
type udpRecorder struct {
	t  testing.TB
	pc *net.UDPConn
	to *net.UDPAddr

	mu      sync.Mutex
	peers   map[string]*net.UDPConn
	seen    map[string]time.Time // first INVITE's arrival, by Call-ID
	methods map[string]int       // requests received, by method
}

func newUDPRecorder(t testing.TB, carrier string) *udpRecorder {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", carrier)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	r := &udpRecorder{t: t, pc: pc, to: to, peers: map[string]*net.UDPConn{}, seen: map[string]time.Time{}, methods: map[string]int{}}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.peers {
			_ = c.Close()
		}
	})
	go func() {
		defer close(done)
		r.serve()
	}()
	return r
}

func (r *udpRecorder) addr() string { return r.pc.LocalAddr().String() }

func (r *udpRecorder) serve() {
	buf := make([]byte, 65535)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := r.pc.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		at, ok := kernelStamp(oob[:oobn])
		if !ok {
			r.t.Errorf("recorder: datagram from %s without a kernel timestamp", from)
			at = time.Now()
		}
		msg := buf[:n]
		if bytes.HasPrefix(msg, []byte("INVITE ")) {
			r.note(msg, at)
		}
		if method, _, ok := bytes.Cut(msg, []byte(" ")); ok && !bytes.Equal(method, []byte("SIP/2.0")) {
			r.mu.Lock()
			r.methods[string(method)]++
			r.mu.Unlock()
		}
		if up := r.peer(from); up != nil {
			_, _ = up.Write(msg)
		}
	}
}

// note keeps the arrival of the first INVITE of each call; a retransmission
// or an authenticated retry is not a new call for the carrier's CPS.
func (r *udpRecorder) note(b []byte, at time.Time) {
	msg, err := sip.ParseMessage(append([]byte(nil), b...))
	if err != nil {
		r.t.Errorf("recorder: unparsable INVITE: %v", err)
		return
	}
	id := callIDOf(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[id]; !ok {
		r.seen[id] = at
	}
}

// requests is how many requests of method arrived.
func (r *udpRecorder) requests(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.methods[method]
}

// invites are the arrivals of the calls' first INVITEs, in order.
func (r *udpRecorder) invites() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, at := range r.seen {
		out = append(out, at)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func (r *udpRecorder) peer(from *net.UDPAddr) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up := r.peers[from.String()]; up != nil {
		return up
	}
	up, err := net.DialUDP("udp", nil, r.to)
	if err != nil {
		return nil
	}
	r.peers[from.String()] = up
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // refused while the carrier is gone
			}
			_, _ = r.pc.WriteToUDP(buf[:n], from)
		}
	}()
	return up
}

// kernelStamp reads the SO_TIMESTAMPNS control message of a datagram.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}
