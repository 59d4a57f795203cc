package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/server/web"
)

// Validate refuses a non-loopback address without a password, with an
// error that says what to do, and accepts loopback ones and any address
// with a password.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		listen, password string
		ok               bool
	}{
		{"127.0.0.1:9901", "", true},
		{"localhost:9901", "", true},
		{"[::1]:9901", "", true},
		{"0.0.0.0:9901", "", false},
		{":9901", "", false},
		{"10.1.2.3:9901", "", false},
		{"0.0.0.0:9901", "pw", true},
		{":9901", "pw", true},
		{"nonsense", "pw", false},
		{"off", "", false},
	} {
		t.Run(tc.listen+"/"+tc.password, func(t *testing.T) {
			c := web.Config{Listen: tc.listen, Password: tc.password}
			err := c.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok && tc.password == "" && strings.Contains(tc.listen, ":99") && !strings.Contains(err.Error(), "SLUICE_PASSWORD") {
				t.Errorf("error does not name SLUICE_PASSWORD: %v", err)
			}
		})
	}
	for _, s := range []string{"", "off", "OFF"} {
		if !web.Disabled(s) {
			t.Errorf("Disabled(%q) = false", s)
		}
	}
	if web.Disabled(web.DefaultListen) {
		t.Error("the default is disabled")
	}
}

// start serves cfg on a loopback port until the test ends, and returns its
// base URL.
func start(t *testing.T, cfg web.Config) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return "http://" + l.Addr().String()
}

// get fetches url with header h (name, value) and returns the status and
// body.
func get(t *testing.T, url string, h ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// With a password, a request without it (or with a wrong one) gets 401
// and a challenge; basic auth with any user name and a bearer token are
// let through.
func TestAuth(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics here") })
	base := start(t, web.Config{Password: "s3cret", Metrics: metrics})
	if code, h, _ := get(t, base+"/metrics"); code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d, WWW-Authenticate %q", code, h.Get("WWW-Authenticate"))
	}
	for _, bad := range [][]string{
		{"Authorization", "Bearer wrong"},
		{"Authorization", "Basic " + basic("u", "wrong")},
		{"Authorization", "Bearer "},
		{"Authorization", "s3cret"},
	} {
		if code, _, _ := get(t, base+"/metrics", bad...); code != http.StatusUnauthorized {
			t.Errorf("%q: %d, want 401", bad[1], code)
		}
	}
	for _, good := range [][]string{
		{"Authorization", "Bearer s3cret"},
		{"Authorization", "bearer s3cret"},
		{"Authorization", "Basic " + basic("anyone", "s3cret")},
		{"Authorization", "Basic " + basic("", "s3cret")},
	} {
		if code, _, body := get(t, base+"/metrics", good...); code != http.StatusOK || body != "metrics here" {
			t.Errorf("%q: %d %q", good[1], code, body)
		}
	}
	if code, _, _ := get(t, base+"/", "Authorization", "Bearer s3cret"); code != http.StatusOK {
		t.Errorf("/ with the password: %d", code)
	}
	if code, _, _ := get(t, base+"/"); code != http.StatusUnauthorized {
		t.Errorf("/ without the password: %d", code)
	}
}

func basic(user, pw string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, pw)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// Without a password every request is served; "/" is a plain page linking
// /metrics unless a page is mounted, which then gets every other path.
func TestRoutes(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics here") })
	base := start(t, web.Config{Metrics: metrics})
	if code, _, body := get(t, base+"/"); code != http.StatusOK || !strings.Contains(body, `href="/metrics"`) {
		t.Errorf("/: %d %q", code, body)
	}
	if code, _, _ := get(t, base+"/other"); code != http.StatusNotFound {
		t.Errorf("/other without a page: %d", code)
	}
	if code, _, body := get(t, base+"/metrics"); code != http.StatusOK || body != "metrics here" {
		t.Errorf("/metrics: %d %q", code, body)
	}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) })
	base = start(t, web.Config{Metrics: metrics, Page: page})
	for path, want := range map[string]string{"/": "page /", "/static/app.js": "page /static/app.js", "/metrics": "metrics here"} {
		if code, _, body := get(t, base+path); code != http.StatusOK || body != want {
			t.Errorf("%s: %d %q, want %q", path, code, body, want)
		}
	}
}

// Serve returns nil once its context ends, and the port is closed.
func TestShutdown(t *testing.T) {
	s, err := web.New(web.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	if code, _, _ := get(t, "http://"+l.Addr().String()+"/"); code != http.StatusOK {
		t.Fatalf("/: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}
