package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// signInForm is the sign-in page as a browser loaded it: the form's token and the
// cookie it must be posted with. Posts carry no other state, so many may go at once.
type signInForm struct {
	url, cookie, csrf string
}

func loadSignInForm(t *testing.T, baseURL string) signInForm {
	t.Helper()
	res, err := http.Get(baseURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	m := formCSRF.FindStringSubmatch(string(body))
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == loginCookie {
			cookie = c.Value
		}
	}
	if res.StatusCode != http.StatusOK || m == nil || cookie == "" {
		t.Fatalf("sign-in page: %d, token %v, cookie %q", res.StatusCode, m, cookie)
	}
	return signInForm{url: baseURL, cookie: cookie, csrf: m[1]}
}

// post signs in as username, through a proxy that says the client is forwardedFor
// when that is not empty; it returns the status and Retry-After.
func (f signInForm) post(ctx context.Context, username, password, forwardedFor string) (int, string, error) {
	form := url.Values{"csrf": {f.csrf}, "username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, "POST", f.url+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.url)
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: f.cookie})
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After"), nil
}

func (f signInForm) mustPost(t *testing.T, username, password, forwardedFor string) (int, string) {
	t.Helper()
	status, retry, err := f.post(t.Context(), username, password, forwardedFor)
	if err != nil {
		t.Fatal(err)
	}
	return status, retry
}

// concurrentSignIns posts n sign-ins at once, the i-th as username(i), and counts
// the answers by status. Every one must be answered within the client's timeout.
func concurrentSignIns(t *testing.T, f signInForm, n int, username func(int) string) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	counts := map[int]int{}
	var errs []error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			status, retry, err := f.post(ctx, username(i), "a wrong password", "")
			mu.Lock()
			defer mu.Unlock()
			if err == nil && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && retry == "" {
				err = fmt.Errorf("%d without Retry-After", status)
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			counts[status]++
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d sign-ins failed, first: %v", len(errs), n, errs[0])
	}
	for status := range counts {
		switch status {
		case http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			t.Errorf("answers %v: %d is not a refusal", counts, status)
		}
	}
	return counts
}

// TestConcurrentGuessesAreCountedBeforeTheCheck sends 60 wrong guesses for one
// user at once: no more than the per-user allowance reach the password check.
func TestConcurrentGuessesAreCountedBeforeTheCheck(t *testing.T) {
	// A slot for every attempt: only the limiter stands between them and the check.
	e := newUIEnv(t, Config{Limits: Limits{LoginPerUser: 10, PasswordChecks: 60}})
	counts := concurrentSignIns(t, loadSignInForm(t, e.srv.URL), 60, func(int) string { return "agent1" })
	if counts[http.StatusUnauthorized] != 10 || counts[http.StatusTooManyRequests] != 50 {
		t.Errorf("answers %v: want 10 checked (401) and 50 refused (429)", counts)
	}
}

// TestOneUsersLockoutLocksNoOneElse floods one user with wrong guesses, and sprays
// many users from one address: the user and the address are refused, nobody else.
func TestOneUsersLockoutLocksNoOneElse(t *testing.T) {
	const attacker, colleague = "203.0.113.9", "198.51.100.7"
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
	}{
		{"behind a trusted proxy", loopback},
		{"everyone on one address", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUIEnv(t, Config{Limits: Limits{TrustedProxies: tc.proxies, LoginPerUser: 10, LoginPerIP: 40}})
			f := loadSignInForm(t, e.srv.URL)
			for i := range 100 {
				status, retry := f.mustPost(t, "agent1", fmt.Sprint("guess ", i), attacker)
				want := http.StatusUnauthorized
				if i >= 10 {
					want = http.StatusTooManyRequests
				}
				if status != want {
					t.Fatalf("guess %d for agent1: %d, want %d", i, status, want)
				}
				if s, _ := strconv.Atoi(retry); want == http.StatusTooManyRequests && (s < 1 || s > 90) {
					t.Fatalf("guess %d: Retry-After %q, want the 90 s until one more attempt is allowed", i, retry)
				}
			}
			// agent1 is locked, even with the right password; admin is not.
			if status, _ := f.mustPost(t, "agent1", testPassword, colleague); status != http.StatusTooManyRequests {
				t.Errorf("agent1 with the right password during the lockout: %d, want 429", status)
			}
			for _, who := range []string{colleague, attacker} {
				if status, _ := f.mustPost(t, "admin", testPassword, who); status != http.StatusSeeOther {
					t.Errorf("admin from %s during agent1's lockout: %d, want 303", who, status)
				}
			}
		})
	}

	t.Run("a spray from one address", func(t *testing.T) {
		e := newUIEnv(t, Config{Limits: Limits{TrustedProxies: loopback, LoginPerIP: 20}})
		f := loadSignInForm(t, e.srv.URL)
		for i := range 25 {
			status, _ := f.mustPost(t, fmt.Sprint("nobody", i), "guess", attacker)
			if want := map[bool]int{true: http.StatusUnauthorized, false: http.StatusTooManyRequests}[i < 20]; status != want {
				t.Fatalf("guess %d from the sprayer: %d, want %d", i, status, want)
			}
		}
		if status, _ := f.mustPost(t, "admin", testPassword, attacker); status != http.StatusTooManyRequests {
			t.Errorf("admin from the spraying address: %d, want 429", status)
		}
		if status, _ := f.mustPost(t, "admin", testPassword, colleague); status != http.StatusSeeOther {
			t.Errorf("admin from another address: %d, want 303", status)
		}
	})

	t.Run("forwarded addresses from an untrusted peer are ignored", func(t *testing.T) {
		e := newUIEnv(t, Config{Limits: Limits{LoginPerIP: 20}})
		f := loadSignInForm(t, e.srv.URL)
		for i := range 25 {
			status, _ := f.mustPost(t, fmt.Sprint("nobody", i), "guess", fmt.Sprintf("192.0.2.%d", i))
			if want := map[bool]int{true: http.StatusUnauthorized, false: http.StatusTooManyRequests}[i < 20]; status != want {
				t.Fatalf("guess %d with a made-up X-Forwarded-For: %d, want %d", i, status, want)
			}
		}
	})
}

func TestClientIP(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote, header string
		values               []string
		want                 string
	}{
		{"no proxy", "192.0.2.1:5000", "X-Forwarded-For", []string{"198.51.100.1"}, "192.0.2.1"},
		{"trusted proxy", "10.1.1.1:5000", "X-Forwarded-For", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client's own header ignored", "10.1.1.1:5000", "X-Forwarded-For", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "[::1]:5000", "X-Forwarded-For", []string{"6.6.6.6, 198.51.100.1", "10.2.2.2"}, "198.51.100.1"},
		{"only proxies", "10.1.1.1:5000", "X-Forwarded-For", []string{"10.3.3.3"}, "10.3.3.3"},
		{"no header", "10.1.1.1:5000", "X-Forwarded-For", nil, "10.1.1.1"},
		{"garbage stops at the proxy", "10.1.1.1:5000", "X-Forwarded-For", []string{"not an address"}, "10.1.1.1"},
		{"Forwarded", "10.1.1.1:5000", "Forwarded", []string{`for=6.6.6.6, for="[2001:db8::17]:4711";proto=https`}, "2001:db8::17"},
		{"Forwarded with port", "10.1.1.1:5000", "Forwarded", []string{"for=198.51.100.2:80;by=10.1.1.1"}, "198.51.100.2"},
		{"the other header ignored", "10.1.1.1:5000", "Forwarded", nil, "10.1.1.1"},
		{"IPv4-mapped", "[::ffff:192.0.2.9]:5000", "X-Forwarded-For", nil, "192.0.2.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{serveLimits: Limits{TrustedProxies: proxies, ClientIPHeader: tc.header}.withDefaults()}
			r, _ := http.NewRequest("POST", "/login", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.values {
				r.Header.Add("X-Forwarded-For", v)
				r.Header.Add("Forwarded", v)
			}
			if got := s.clientIP(r); got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/8", "ten"}); err == nil || !strings.Contains(err.Error(), "trusted_proxies[1]") {
		t.Errorf("a bad entry: %v, want an error naming trusted_proxies[1]", err)
	}
}

func TestRateRule(t *testing.T) {
	r := rateRule{burst: 3, period: 3 * time.Minute}
	t0 := time.Unix(1_000_000, 0)
	var tat time.Time
	for i, tc := range []struct {
		at       time.Duration
		wantWait time.Duration
	}{
		{0, 0}, {0, 0}, {0, 0}, // the burst
		{0, time.Minute}, {30 * time.Second, 30 * time.Second}, // then one a minute
		{time.Minute, 0}, {time.Minute, time.Minute},
		{10 * time.Minute, 0}, {10 * time.Minute, 0}, {10 * time.Minute, 0}, {10 * time.Minute, time.Minute}, // a full burst again
	} {
		next, wait := r.admit(tat, t0.Add(tc.at))
		if wait != tc.wantWait {
			t.Fatalf("attempt %d at +%s: wait %s, want %s", i, tc.at, wait, tc.wantWait)
		}
		if wait == 0 {
			tat = next
		}
	}
}

// heapObjects is the bytes of live (and not yet swept) heap objects.
func heapObjects() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// vmHWM is the process's peak resident memory, from /proc.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmHWM in /proc/self/status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// TestConcurrentSignInsHaveBoundedMemory signs in 60 usernames at once with the
// real password hashing (64 MiB a check): the heap grows by no more than the
// checks the pool runs at once (plus one, and slack), and every attempt is answered.
func TestConcurrentSignInsHaveBoundedMemory(t *testing.T) {
	const checks = 2
	e := newEnv(t, Config{Limits: Limits{PasswordChecks: checks, PasswordQueue: 4}})
	if e.server.ui.hasher.cost != DefaultPasswordCost() {
		t.Fatalf("the hasher uses %+v, want the real %+v", e.server.ui.hasher.cost, DefaultPasswordCost())
	}
	f := loadSignInForm(t, e.srv.URL)

	debug.FreeOSMemory()
	base := heapObjects()
	// Writing 5 resets the peak resident size (Linux 4.0 and later).
	hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	rssBase := vmHWM(t)
	var peak uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, heapObjects())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	counts := concurrentSignIns(t, f, 60, func(i int) string { return fmt.Sprint("stranger", i) })
	close(stop)
	<-sampled

	const mib = 1 << 20
	bound := uint64(checks+1)*uint64(DefaultPasswordCost().MemoryKiB)*1024 + 32*mib
	growth := peak - min(peak, base)
	if hwmReset {
		t.Logf("peak resident memory grew by %d MiB", (vmHWM(t)-rssBase)/mib)
	}
	t.Logf("answers %v; heap grew by %d MiB at its peak (bound %d MiB), %d goroutines", counts, growth/mib, bound/mib, runtime.NumGoroutine())
	if growth > bound {
		t.Errorf("the heap grew by %d MiB, more than the %d MiB %d checks at once may take", growth/mib, bound/mib, checks)
	}
	if counts[http.StatusUnauthorized] < checks {
		t.Errorf("answers %v: want at least %d passwords checked (401)", counts, checks)
	}
}
