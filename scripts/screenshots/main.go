// Command screenshots runs the demo and saves every page Turbina shows, signed in
// as each demo user, in both languages and at a laptop's and a phone's width, so a
// reviewer can look at every face in a minute. `make screenshots` runs it.
//
// It starts bin/turbina demo on a temporary data directory and a free loopback
// port, reads the demo users' passwords from its banner, and drives headless
// Chromium with chromedp. Pages are found from each role's navigation links, so a
// new page is photographed without a change here.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// viewport is one width pages are photographed at.
type viewport struct {
	name          string
	width, height int64
}

var (
	viewports = []viewport{{"1366", 1366, 768}, {"390", 390, 844}}
	languages = []string{"pt-BR", "en"}
	// banner matches a demo user's line of the demo's banner: role, username, password.
	banner = regexp.MustCompile(`^\s+(admin|supervisor|sales|agent)\s+(\S+)\s+(\S+)\s+\S+$`)
)

func main() {
	bin := flag.String("turbina", "bin/turbina", "the turbina binary to run the demo with")
	out := flag.String("out", "screenshots", "directory the pictures are written to")
	timeout := flag.Duration("timeout", 6*time.Minute, "give up after this long")
	settle := flag.Duration("settle", 2*time.Second, "how long a page is given to fill in before it is photographed")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *bin, *out, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "screenshots:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, out string, settle time.Duration) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	data, err := os.MkdirTemp("", "turbina-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logins, stop, err := startDemo(ctx, bin, data, addr)
	if err != nil {
		return err
	}
	defer stop()
	chromium, err := findChromium()
	if err != nil {
		return err
	}
	base := "http://" + addr
	n := 0
	seen := map[string]bool{} // paths photographed: each once, as the first role that opens it sees it
	// Signed out: the sign-in page.
	shots, err := photograph(ctx, chromium, base, nil, []string{"/"}, seen, out, "login", settle)
	n += shots
	if err != nil {
		return err
	}
	for _, role := range []string{"sales", "supervisor", "agent", "admin"} {
		l, ok := logins[role]
		if !ok {
			return fmt.Errorf("the demo's banner names no %s user", role)
		}
		shots, err := photograph(ctx, chromium, base, &l, nil, seen, out, role, settle)
		n += shots
		if err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
	}
	fmt.Printf("%d screenshots in %s\n", n, out)
	return nil
}

// login is a demo user's username and password, as the banner prints them.
type login struct{ username, password string }

// freeAddr is a loopback address with a port free now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startDemo runs the demo and waits for its banner; stop ends it.
func startDemo(ctx context.Context, bin, data, addr string) (map[string]login, func(), error) {
	cmd := exec.Command(bin, "demo", "--http-addr", addr, "--data-dir", data, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start the demo: %w", err)
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	type result struct {
		logins map[string]login
		err    error
	}
	got := make(chan result, 1)
	go func() {
		logins := map[string]login{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := banner.FindStringSubmatch(sc.Text()); m != nil {
				logins[m[1]] = login{m[2], m[3]}
			}
			if strings.HasPrefix(sc.Text(), "Wallboard: ") && len(logins) > 0 {
				got <- result{logins: logins}
				io.Copy(io.Discard, stdout)
				return
			}
		}
		got <- result{err: errors.New("the demo ended before it printed its banner")}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			stop()
			return nil, nil, r.err
		}
		return r.logins, stop, nil
	case <-ctx.Done():
		stop()
		return nil, nil, fmt.Errorf("waiting for the demo: %w", ctx.Err())
	}
}

func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium in PATH")
}

// photograph signs in as who (nil: nobody), then saves each page in paths (none: the
// pages of the header's navigation, and a page the role may not open) in every
// language and width, as out/<name>-<page>-<lang>-<width>.png.
func photograph(ctx context.Context, chromium, base string, who *login, paths []string, seen map[string]bool, out, name string, settle time.Duration) (int, error) {
	profile, err := os.MkdirTemp("", "turbina-screenshots-chromium-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(profile)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile), chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("use-fake-device-for-media-stream", true))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser, which lives as long as the context it
	// runs under: not a page's timeout.
	if err := chromedp.Do(bctx); err != nil {
		return 0, fmt.Errorf("start chromium: %w", err)
	}
	forbidden := "" // another role's page, photographed as this role's refusal
	if who != nil {
		if err := chromedp.Do(bctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), who.username),
			chromedp.SendKeys(chromedp.CSS("#password"), who.password),
			chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS("#sign-out")),
		); err != nil {
			return 0, fmt.Errorf("sign in as %s: %w", who.username, err)
		}
		if paths == nil {
			nav, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('header nav a')].map((a) => a.pathname)`))
			if err != nil {
				return 0, err
			}
			paths = nav
			if f := forbiddenFor(nav); f != "" && !seen["forbidden"] {
				seen["forbidden"] = true
				forbidden = f
				paths = append(paths, f)
			}
		}
	}
	n := 0
	for _, path := range paths {
		if path != forbidden {
			if seen[path] {
				continue
			}
			seen[path] = true
		}
		for _, lang := range languages {
			for _, vp := range viewports {
				png, page, err := shoot(bctx, base+path, lang, vp, settle)
				if err != nil {
					return n, fmt.Errorf("%s (%s, %s): %w", path, lang, vp.name, err)
				}
				file := filepath.Join(out, fmt.Sprintf("%s-%s-%s-%s.png", name, page, lang, vp.name))
				if err := os.WriteFile(file, png, 0o644); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// forbiddenFor is a page of another role, which shows the forbidden page; "" when
// the role may open them all.
func forbiddenFor(nav []string) string {
	for _, p := range []string{"/supervisor", "/sales", "/agent"} {
		found := false
		for _, n := range nav {
			found = found || n == p
		}
		if !found {
			return p
		}
	}
	return ""
}

// shoot opens url in lang at vp, lets it fill in, and returns a picture of the
// whole page and the page's name (its data-page).
func shoot(ctx context.Context, url, lang string, vp viewport, settle time.Duration) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(vp.width, vp.height),
		chromedp.Navigate(url),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem('turbina.lang', %q)`, lang)),
		chromedp.Reload(),
		chromedp.WaitReady(chromedp.CSS("main")),
		chromedp.Sleep(settle),
	); err != nil {
		return nil, "", err
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.dataset.page`))
	if err != nil {
		return nil, "", err
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	return png, page, err
}
