// Package browser loads a page in a real headless browser for tests
// (chromium-headless-shell or chromium, driven by chromedp): what it
// printed to the console, what it fetched, values from its DOM and a
// screenshot.
package browser

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Page is a page loaded in the browser.
type Page struct {
	ctx      context.Context
	url      string
	mu       sync.Mutex
	console  []string // console errors and warnings, exceptions, log entries of level error
	requests []string // URLs fetched other than the page itself
}

// execPath finds the browser: $TCPTRACE_BROWSER, else Debian's
// chromium-headless-shell or chromium.
func execPath() string {
	if p := os.Getenv("TCPTRACE_BROWSER"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "chrome-headless-shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Open loads url (a file:// or http:// address) in a fresh headless
// browser, width×height CSS pixels, and waits for it to load. Without a
// browser the test skips, saying what to install (CI installs it, and
// fails on any skip).
func Open(t *testing.T, url string, width, height int) *Page {
	t.Helper()
	exe := execPath()
	if exe == "" {
		t.Skip("no headless browser (apt-get install chromium-headless-shell, or set TCPTRACE_BROWSER); CI installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(width, height))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	p := &Page{url: url}
	// The listener sees every event of the tab from its start; chromedp
	// enables the runtime, log and network domains when it attaches.
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithListener(p.listen))
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	p.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("loading %s in %s: %v", url, exe, err)
	}
	return p
}

// listen records console messages, exceptions, error log entries and
// requests for anything but the page.
func (p *Page) listen(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p.console = append(p.console, "console."+string(e.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		p.console = append(p.console, "exception: "+e.ExceptionDetails.Text)
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
			p.console = append(p.console, "log "+string(e.Entry.Level)+": "+e.Entry.Text+" "+e.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		if e.Request.URL != p.url {
			p.requests = append(p.requests, e.Request.URL)
		}
	}
}

// Console returns the console errors and warnings, exceptions and error
// log entries so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Requests returns the URLs the page fetched beside itself.
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Eval evaluates the JavaScript expression js in the page into out
// (decoded from JSON).
func (p *Page) Eval(t *testing.T, js string, out any) {
	t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		t.Fatalf("evaluating in the page: %v", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
}

// Screenshot writes a PNG of the whole page to path.
func (p *Page) Screenshot(t *testing.T, path string) {
	t.Helper()
	p.shot(t, path, chromedp.FullScreenshot(100))
}

// ScreenshotView writes a PNG of what the window shows (its top) to path.
func (p *Page) ScreenshotView(t *testing.T, path string) {
	t.Helper()
	p.shot(t, path, chromedp.CaptureScreenshot())
}

func (p *Page) shot(t *testing.T, path string, a chromedp.Action[[]byte]) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, a)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
