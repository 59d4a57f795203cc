package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables tried for headless Chromium, Debian's
// chromium package first.
var chromiumNames = []string{"chromium", "/usr/lib/chromium/chromium", "chromium-browser"}

// startBrowser starts headless Chromium for the test and returns a context
// of one tab in it; both end with the test. A missing Chromium fails the
// test, saying what to install.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := findChromium(chromiumNames)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 1024),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// Without a timeout: the context of the first run bounds the browser's
	// life. Each action gets its own (actionTimeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start headless Chromium (%s): %v", path, err)
	}
	return ctx
}

// findChromium returns the first of names found, or an error saying what
// to install.
func findChromium(names []string) (string, error) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("headless Chromium not found (looked for %s): the status page is tested in a real browser; "+
		"install Debian's chromium package: sudo apt-get install -y chromium (make test installs it when missing)",
		strings.Join(names, ", "))
}

// A missing Chromium is an error naming the package to install (the test
// fails with it, never skips).
func TestFindChromiumMissing(t *testing.T) {
	_, err := findChromium([]string{"no-such-chromium", "/nonexistent/chromium"})
	if err == nil || !strings.Contains(err.Error(), "sudo apt-get install -y chromium") {
		t.Errorf("findChromium of missing names = %v, want an error saying to install chromium", err)
	}
}

// actionTimeout bounds one action in the browser.
const actionTimeout = 20 * time.Second

// evalJS evaluates a JavaScript expression in the page and returns its
// (JSON-able) value; a null gives a nil pointer when T is one.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS evaluates expr until it is true, failing the test with what after
// timeout.
func waitJS(t *testing.T, ctx context.Context, expr string, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if evalJS[bool](t, ctx, "!!("+expr+")") {
			return
		}
		if time.Now().After(deadline) {
			body := evalJS[string](t, ctx, "document.body ? document.body.innerText : ''")
			t.Fatalf("%s: not after %s; the page shows:\n%s", what, timeout, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jsString renders s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves a PNG of the whole page as a test artifact: under
// $SLUICE_TEST_ARTIFACTS/statuspage when set, else in the test's artifact
// directory (kept with go test -artifacts), and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("SLUICE_TEST_ARTIFACTS")
	if dir != "" {
		dir = filepath.Join(dir, "statuspage")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
	} else {
		dir = t.ArtifactDir()
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// navigate opens url in the tab.
func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// must fails the test on err.
func must(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
