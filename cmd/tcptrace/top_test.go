package main

// tcptrace top on a real pseudo-terminal over the live kernel: the 64-port
// incident shows up with its countdown and its warning before connect()
// first fails; q ends it with the summary on stderr.

import (
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
	"github.com/tcptrace/tcptrace/internal/testutil/browser"
)

// countdownRE finds a destination row's time to exhaustion: "12.3s" or "now!".
var countdownRE = regexp.MustCompile(`\b(\d+(\.\d)?s|\dm\d+s)\s+\d+\s*$`)

// TestTopIncident runs `tcptrace top --port 8080` on a 120×40 terminal
// during the incident (64 ports, a client closing first, tcp_tw_reuse=0).
// TCPTRACE_UPDATE_SCREENSHOT=1 also draws the screen of the warning into
// docs/top.png, the README's picture.
func TestTopIncident(t *testing.T) {
	testutil.RequirePrivileged(t)
	h := newHosts(t, 6)
	py := filepath.Join(t.TempDir(), "incident.py")
	if err := os.WriteFile(py, []byte(incidentPy), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "top", "--port", "8080")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	term := testutil.StartOnTerminal(t, cmd, 120, 40)
	if !term.WaitFor(20*time.Second, "DESTINATIONS", "PROCESSES CLOSING FIRST") {
		t.Fatalf("no screen:\n%s\nstderr: %s", term.Screen(), stderr.String())
	}
	startIncidentServer(t, h, py, "client-close")
	out := run(t, "ip", "netns", "exec", h.cli, "python3", py, "client-close", h.srvAddr, "8080", "20", "6")
	var cr clientResult
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.FirstFail == nil {
		t.Fatalf("client: %q %v", out, err)
	}
	firstFail := time.Unix(0, int64(*cr.FirstFail*1e9))
	time.Sleep(1500 * time.Millisecond)
	dest := h.srvAddr + ":8080"
	// The first and the last screens before it with the destination, its
	// countdown and the warning.
	var warned, latest *testutil.Frame
	frames := term.Frames()
	for i := range frames {
		f := &frames[i]
		if !strings.Contains(f.Text, "ports run out in") || !strings.Contains(f.Text, dest) || !f.At.Before(firstFail) {
			continue
		}
		for _, l := range strings.Split(f.Text, "\n") {
			if strings.Contains(l, dest) && countdownRE.MatchString(l) {
				if warned == nil {
					warned = f
				}
				latest = f
			}
		}
	}
	if warned == nil {
		t.Errorf("no screen before the first EADDRNOTAVAIL (%v) with %s, its countdown and the warning; last screen:\n%s",
			firstFail.Format("15:04:05.000"), dest, term.Screen())
	} else {
		t.Logf("%v before the first EADDRNOTAVAIL the screen showed:\n%s", firstFail.Sub(warned.At), warned.Text)
	}
	final := term.Screen()
	if !strings.Contains(final, "now!") || !strings.Contains(final, "64/64") {
		t.Errorf("final screen lacks the exhausted destination:\n%s", final)
	}
	_ = os.WriteFile(filepath.Join(t.ArtifactDir(), "top.txt"), []byte(final), 0o644)
	// Enter opens the destination's ladders, of its connections from then
	// on: more connects (failing, the ports are still held) draw there.
	if err := term.Type("\r"); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "exec", h.cli, "python3", py, "client-close", h.srvAddr, "8080", "20", "1")
	if !term.WaitFor(10*time.Second, "LADDERS TOWARD "+dest, "SYN_SENT") {
		t.Errorf("Enter: no ladder toward %s:\n%s", dest, term.Screen())
	}
	_ = term.Type("\x1b")
	if !term.WaitFor(5*time.Second, "DESTINATIONS") {
		t.Errorf("Esc: not back to the tables:\n%s", term.Screen())
	}
	if err := term.Type("q"); err != nil {
		t.Fatal(err)
	}
	if err := term.Wait(10 * time.Second); err != nil {
		t.Fatalf("q: %v: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "tcptrace summary") || !strings.Contains(stderr.String(), "EADDRNOTAVAIL") {
		t.Errorf("no summary and diagnosis on stderr after q:\n%s", stderr.String())
	}
	if latest != nil && os.Getenv("TCPTRACE_UPDATE_SCREENSHOT") == "1" {
		screenPNG(t, latest.Text, "../../docs/top.png")
	}
}

// screenPNG draws a screen's text as the README's picture of it.
func screenPNG(t *testing.T, text, path string) {
	lines := strings.Split(strings.TrimRight(text, "\n "), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" || len(lines) > 0 && strings.Contains(lines[len(lines)-1], "q quit") {
		lines = lines[:len(lines)-1] // the blank rows and the keys' line
	}
	text = strings.Join(lines, "\n")
	page := filepath.Join(t.TempDir(), "screen.html")
	doc := `<!DOCTYPE html><html><head><meta charset="utf-8"><style>` +
		`body{margin:0;background:#1d1f21}pre{margin:0;padding:12px 14px;color:#e0e0e0;` +
		`font:13px/1.25 "DejaVu Sans Mono",monospace}</style></head><body><pre>` + html.EscapeString(text) + `</pre></body></html>`
	if err := os.WriteFile(page, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	p := browser.Open(t, "file://"+page, 1010, len(lines)*17+26)
	p.ScreenshotView(t, path)
}

// TestTopNeedsTerminal: off a terminal top refuses in one line, pointing
// to report, with the usage status.
func TestTopNeedsTerminal(t *testing.T) {
	out, err := exec.Command(binary, "top", "-r", sample).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 ||
		!strings.Contains(string(out), "tcptrace report") {
		t.Errorf("top off a terminal: %v: %q", err, out)
	}
}
