package sip

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// benchEnv returns an int from the environment, or def.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSustainedRate measures sustained call attempts per second from
// Turbina to a sipp UAS that answers at once: SIP_BENCH_CALLS calls, at most
// SIP_BENCH_CONCURRENCY at a time, each answered and hung up, per iteration.
// scripts/bench-sip.sh runs it with -benchtime=1x.
func BenchmarkSustainedRate(b *testing.B) {
	for b.Loop() {
		sustainedRate(b)
	}
}

func sustainedRate(t testing.TB) {
	calls := benchEnv("SIP_BENCH_CALLS", 5000)
	conc := benchEnv("SIP_BENCH_CONCURRENCY", 100)
	sipp := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: calls, Timeout: 120 * time.Second})
	cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
	cfg.InviteTimeout = Duration(5 * time.Second)
	cfg.FaultsToOpen = 1 << 30
	// answer.xml streams no RTP and answers no OPTIONS: with the default
	// media_silence its held calls, and with the default suspect_after a
	// half-second stall of sipp on a loaded machine, make the trunk suspect; the
	// unanswered probes then find it down and end the calls (a fifth of them
	// were lost so). The benchmark measures the rate, not the health watch.
	cfg.MediaSilence = Duration(time.Hour)
	cfg.SuspectAfter = Duration(4 * time.Second)
	o := newTestOriginator(t, cfg)

	var (
		mu     sync.Mutex
		setups []time.Duration
		// overheads are Turbina's own share of each setup: Dial called → INVITE
		// sent, plus 200 received → ACK sent; the carrier's answer time is not in it.
		overheads []time.Duration
		failed    int
	)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				events, onEvent := eventChan()
				dialed := time.Now()
				c, err := o.Dial(context.Background(), DialRequest{To: "+34600000100", OnEvent: onEvent})
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				answered := false
			wait:
				for ev := range events {
					switch ev.Kind {
					case EventAnswered:
						answered = true
						break wait
					case EventEnded:
						break wait
					}
				}
				if answered {
					_ = c.Hangup(context.Background())
				}
				r := waitResult(t, c, 30*time.Second)
				mu.Lock()
				if r.Outcome == OutcomeAnswered {
					setups = append(setups, r.SetupDuration())
					overheads = append(overheads, r.InviteAt.Sub(dialed)+r.AckAt.Sub(r.AnswerAt))
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	el := time.Since(start)
	slices.Sort(setups)
	slices.Sort(overheads)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	t.Logf("BENCH turbina: %d calls in %s = %.0f calls/s, failed %d, setup p50 %s p99 %s max %s",
		calls, el.Round(time.Millisecond), float64(calls)/el.Seconds(), failed, pct(setups, 0.5), pct(setups, 0.99), pct(setups, 1))
	t.Logf("BENCH turbina setup overhead (Dial→INVITE sent + 200 received→ACK sent): p50 %s p99 %s max %s",
		pct(overheads, 0.5), pct(overheads, 0.99), pct(overheads, 1))
	if failed > 0 {
		t.Errorf("%d failed calls", failed)
	}
	sipp.Wait(t, 15*time.Second)
}

// BenchmarkMemoryPerCall holds SIP_BENCH_HOLD (default 1000) answered calls at
// once and reports the live heap per call (SIP dialog, RTP socket and reader).
func BenchmarkMemoryPerCall(b *testing.B) {
	for b.Loop() {
		memoryPerCall(b)
	}
}

func memoryPerCall(t testing.TB) {
	n := benchEnv("SIP_BENCH_HOLD", 1000)
	sipp := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: n, Timeout: 120 * time.Second})
	cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
	cfg.InviteTimeout = Duration(5 * time.Second)
	cfg.MediaSilence = Duration(time.Hour) // as in sustainedRate
	cfg.SuspectAfter = Duration(4 * time.Second)
	o := newTestOriginator(t, cfg)

	heap := func() (uint64, int) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, runtime.NumGoroutine()
	}
	h0, g0 := heap()
	calls := make([]*Call, 0, n)
	for range n {
		c := answeredCall(t, o, "+34600000200")
		calls = append(calls, c)
	}
	time.Sleep(200 * time.Millisecond) // let per-call timers and goroutines settle
	h1, g1 := heap()
	t.Logf("BENCH memory: %d concurrent answered calls: heap %.1f KiB/call, %.1f goroutines/call",
		n, float64(h1-h0)/float64(n)/1024, float64(g1-g0)/float64(n))
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Hangup(context.Background()) }()
	}
	wg.Wait()
	sipp.Wait(t, 15*time.Second)
}
