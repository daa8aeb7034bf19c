// Package ui holds Turbina's web pages: HTML templates, CSS and ES modules, embedded
// in the binary. There is no build step: the files here are what browsers get.
//
// Assets are served under /ui/{version}/, where version is a hash of every asset, so
// that browsers may cache them for a year and still never mix two releases: the ES
// modules import each other by relative path and so stay within one version.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed static templates
var files embed.FS

// ContentSecurityPolicy allows only this origin's scripts, styles and connections:
// the pages have no inline script or style, so injected markup cannot run code.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; media-src 'self' blob: mediastream:; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// Pages renders the pages and serves their assets.
type Pages struct {
	version string
	assets  map[string]asset
	pages   map[string]*template.Template
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// PageData is what every page template receives.
type PageData struct {
	// Page names the page (login, sales, supervisor, agent, forbidden, dnc, users).
	Page string
	// Version is the asset path segment: /ui/{Version}/file.
	Version string
	// User is the signed-in user's name; empty on the login page.
	User string
	// Role is the signed-in user's role.
	Role string
	// CSRF is the token state-changing requests must carry.
	CSRF string
	// Nav lists the pages the user may open.
	Nav []NavItem
	// Next is where the login form leads after signing in.
	Next string
	// Error is a message key for the login form (bad_credentials, too_many_attempts, busy).
	Error string
}

// NavItem is one link of the page header.
type NavItem struct {
	Path, Key string
	Current   bool
}

// New loads the embedded pages and assets.
func New() (*Pages, error) {
	p := &Pages{assets: map[string]asset{}, pages: map[string]*template.Template{}}
	all := sha256.New()
	var names []string
	err := fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// axe-core is for the browser tests, which inject it: no page loads it.
			if name == "static/vendor/axe-core" {
				return fs.SkipDir
			}
			return nil
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		rel := strings.TrimPrefix(name, "static/")
		ct := mime.TypeByExtension(path.Ext(name))
		if path.Ext(name) == ".js" {
			// Module scripts must be served as JavaScript whatever the host's MIME table says.
			ct = "text/javascript; charset=utf-8"
		}
		p.assets[rel] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		fmt.Fprintf(all, "%s\x00%x\x00", rel, sum)
	}
	p.version = hex.EncodeToString(all.Sum(nil)[:6])
	layout, err := files.ReadFile("templates/layout.html")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"login", "sales", "supervisor", "agent", "forbidden", "dnc", "users"} {
		body, err := files.ReadFile("templates/" + name + ".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Parse(string(layout))
		if err == nil {
			_, err = t.Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		p.pages[name] = t
	}
	return p, nil
}

// Version is the current asset version.
func (p *Pages) Version() string { return p.version }

// SetSecurityHeaders adds the headers every UI response carries.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// Render writes a page with status. Pages are never cached: they carry the CSRF token
// and the asset version.
func (p *Pages) Render(w http.ResponseWriter, status int, d PageData) error {
	t, ok := p.pages[d.Page]
	if !ok {
		return fmt.Errorf("no page %q", d.Page)
	}
	d.Version = p.version
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		return fmt.Errorf("render %s: %w", d.Page, err)
	}
	SetSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := io.Copy(w, &buf)
	return err
}

// ServeHTTP serves /ui/{version}/{file}. The current version is cached for a year;
// a request for another version (a page loaded before an upgrade) gets today's file
// without long caching, and an ETag lets either be revalidated cheaply.
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/ui/")
	version, name, ok := strings.Cut(rest, "/")
	a, found := p.assets[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	SetSecurityHeaders(h)
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	if version == p.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.body)
	}
}
