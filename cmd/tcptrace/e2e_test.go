package main

// End-to-end tests of the tcptrace binary against the real kernel: live
// output, recording and replay, signals, closed pipes and bad input.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tcptrace-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tcptrace")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // so it can drop capabilities on every thread
	out, err := build.CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tracer is a running tcptrace process.
type tracer struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *bytes.Buffer
}

// startTracer runs tcptrace with args and waits until it says it is tracing.
func startTracer(t *testing.T, args ...string) *tracer {
	t.Helper()
	tr := &tracer{cmd: exec.Command(binary, args...), stderr: &bytes.Buffer{}}
	tr.cmd.Stdout = &tr.stdout
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tr.cmd.Stderr = pw
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready, _ := testutil.WatchReady(pr, func(l string) { tr.stderr.WriteString(l + "\n") })
	select {
	case ok := <-ready:
		if !ok {
			tr.cmd.Wait()
			t.Fatalf("tcptrace did not start: %s", tr.stderr)
		}
	case <-time.After(20 * time.Second):
		tr.cmd.Process.Kill()
		t.Fatal("tcptrace did not start within 20s")
	}
	t.Cleanup(func() { tr.cmd.Process.Kill() })
	return tr
}

// stop sends sig and waits for a clean exit.
func (tr *tracer) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	tr.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- tr.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tcptrace exited with %v: %s", err, tr.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tcptrace did not exit within 10s of the signal")
	}
}

// workload makes n connections to a fresh loopback listener, the client
// closing first, and returns the listener's port once all have ended.
func workload(t *testing.T, n int) int {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 16)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("PING\r\n"))
		c.Close()
	}
	<-done
	l.Close()
	time.Sleep(200 * time.Millisecond) // let the last softirq transitions arrive
	return port
}

// TestLiveReplayIdentical records a real workload and checks that replaying
// the capture prints byte-for-byte what the live run printed, summary too.
func TestLiveReplayIdentical(t *testing.T) {
	testutil.RequirePrivileged(t)
	capture := filepath.Join(t.TempDir(), "run.tcpt")
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	// Reserve a port for the filter: listen, note the port, close, reuse.
	probe, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	port := strings.TrimPrefix(addr, "127.0.0.1:")
	probe.Close()

	for _, mode := range [][]string{{"--width", "100"}, {"--json"}} {
		os.Remove(capture)
		args := append([]string{"--port", port, "-w", capture}, mode...)
		tr := startTracer(t, args...)
		l, err := lc.Listen(context.Background(), "tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for i := 0; i < 20; i++ {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		time.Sleep(300 * time.Millisecond)
		l.Close()
		time.Sleep(200 * time.Millisecond)
		tr.stop(t, syscall.SIGINT)

		st, err := os.Stat(capture)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("capture mode %v, want 0600", st.Mode().Perm())
		}
		replay := exec.Command(binary, append([]string{"-r", capture, "--port", port}, mode...)...)
		var out, errb bytes.Buffer
		replay.Stdout, replay.Stderr = &out, &errb
		if err := replay.Run(); err != nil {
			t.Fatalf("replay: %v: %s", err, errb.String())
		}
		live := tr.stdout.String()
		if n := strings.Count(live, "\n"); n < 20*5 {
			t.Fatalf("%v: live output has %d lines, want ≥ 100 (20 connections × 2 sockets): %s", mode, n, live)
		}
		if mode[0] == "--json" {
			// The summary's kernel_runs/kernel_ns exist only live.
			live = live[:strings.LastIndex(strings.TrimSuffix(live, "\n"), "\n")+1]
			got := out.String()
			got = got[:strings.LastIndex(strings.TrimSuffix(got, "\n"), "\n")+1]
			if live != got {
				t.Errorf("JSON replay differs from the live run")
			}
			continue
		}
		if live != out.String() {
			t.Errorf("replay differs from the live run\nlive:\n%s\nreplay:\n%s", live, out.String())
		}
		liveSum := tr.stderr.String()[strings.Index(tr.stderr.String(), "tcptrace summary"):]
		replaySum := errb.String()[strings.Index(errb.String(), "tcptrace summary"):]
		if liveSum != replaySum {
			t.Errorf("replay summary differs:\nlive:\n%s\nreplay:\n%s", liveSum, replaySum)
		}
		if !strings.Contains(live, "FIN_WAIT2→TIME_WAIT") && !strings.Contains(live, "FIN_WAIT2 → TIME_WAIT") {
			t.Errorf("no TIME_WAIT handover in the live output:\n%s", live)
		}
	}
}

// TestSignals checks SIGINT and SIGTERM stop tracing cleanly with a summary.
func TestSignals(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		tr := startTracer(t, "--port", "9")
		tr.stop(t, sig)
		if !strings.Contains(tr.stderr.String(), "tcptrace summary") {
			t.Errorf("%v: no summary on stderr: %s", sig, tr.stderr)
		}
	}
}

// TestDuration checks --duration ends the run by itself.
func TestDuration(t *testing.T) {
	testutil.RequirePrivileged(t)
	cmd := exec.Command(binary, "--duration", "500ms", "--json", "--port", "9")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !bytes.Contains(out, []byte(`{"type":"summary"`)) {
		t.Errorf("no JSON summary: %s", out)
	}
}

// TestClosedPipe checks that `tcptrace | head -1` ends tcptrace quietly.
func TestClosedPipe(t *testing.T) {
	testutil.RequirePrivileged(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--no-summary")
	cmd.Stdout = pw
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	time.Sleep(1500 * time.Millisecond)
	pr.Close() // the reader goes away, as head does
	workload(t, 5)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tcptrace exited with %v after its reader left: %s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tcptrace kept running after its reader left")
	}
}

// TestBadInput checks each bad flag gives one clear line and exit status 2
// (a bad command line), and a capture that cannot be read status 1.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--state", "FOO"}, 2},
		{[]string{"--host", "nope"}, 2},
		{[]string{"--ring-size", "3000"}, 2},
		{[]string{"--color", "sometimes"}, 2},
		{[]string{"--comm", "a-name-much-longer-than-15"}, 2},
		{[]string{"-r", "/nonexistent/file.tcpt"}, 1},
		{[]string{"-r", "/"}, 1},
		{[]string{"-r", "x", "-w", "y"}, 2},
	} {
		args := tc.args
		cmd := exec.Command(binary, args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != tc.code {
			t.Errorf("%v: exit %v, want status %d", args, err, tc.code)
		}
		msg := strings.TrimSpace(errb.String())
		if !strings.HasPrefix(msg, "tcptrace: ") || strings.Count(msg, "\n") != 0 || strings.Contains(msg, "panic") {
			t.Errorf("%v: want one line starting with tcptrace:, got %q", args, msg)
		}
	}
}

// sample is the real capture shipped with the repository.
const sample = "../../internal/capture/testdata/sample.tcpt"

// TestReplayUnprivileged replays the shipped capture as nobody: replay needs
// no capabilities.
func TestReplayUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tcptrace-replay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	abs := filepath.Join(dir, "sample.tcpt")
	if err := os.WriteFile(abs, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(binary)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all", binary, "replay", "--width", "100", abs)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay as nobody: %v: %s", err, errb.String())
	}
	for _, want := range []string{"TIME_WAIT", "closer=local", "end=refused", "end=reset"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("replay output lacks %q", want)
		}
	}
	if !strings.Contains(errb.String(), "tcptrace summary") {
		t.Errorf("no summary: %s", errb.String())
	}
}

// TestReplayCutShort replays a capture cut inside its end record, as a
// recording killed while closing leaves it: every complete record is shown,
// the cut is named, and the exit status is 2.
func TestReplayCutShort(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.tcpt")
	if err := os.WriteFile(cut, data[:len(data)-20], 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-r", cut, "--no-summary")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want status 2: %s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "cut short at record") {
		t.Errorf("no cut-short note: %s", errb.String())
	}
	if strings.Count(out.String(), "\n") < 10 {
		t.Errorf("the complete records before the cut were not shown: %s", out.String())
	}
}

// TestReplayDiagram draws the shipped capture's ladders and aggregate.
func TestReplayDiagram(t *testing.T) {
	for _, mode := range []string{"--diagram", "--diagram=aggregate"} {
		out, err := exec.Command(binary, "-r", sample, mode, "--no-summary", "--ascii").Output()
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for _, want := range []string{"active closer", "TIME_WAIT", "SYN+ACK", "FIN"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("%s: output lacks %q", mode, want)
			}
		}
		if mode == "--diagram=aggregate" && !regexp.MustCompile(`(?m)^x30[0-9]  CLIENT -> SERVER 127.0.0.1:6379  graceful`).Match(out) {
			t.Errorf("aggregate does not collapse the 300 churned connections:\n%s", out)
		}
	}
	if err := exec.Command(binary, "-r", sample, "--diagram", "--json").Run(); err == nil {
		t.Error("--diagram with --json was accepted")
	}
}

// TestReplayNetnsFilter filters the shipped capture by network namespace:
// its own keeps every connection, another keeps none; --container needs
// the live host.
func TestReplayNetnsFilter(t *testing.T) {
	all, err := exec.Command(binary, "-r", sample, "--json", "--no-summary").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"netns":(\d+)`).FindSubmatch(all)
	if m == nil {
		t.Fatal("no netns in the capture")
	}
	same, err := exec.Command(binary, "-r", sample, "--json", "--no-summary", "--netns", string(m[1])).Output()
	if err != nil {
		t.Fatal(err)
	}
	other, err := exec.Command(binary, "-r", sample, "--json", "--no-summary", "--netns", "net:[1]").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := func(b []byte) int { return bytes.Count(b, []byte(`"type":"connection"`)) }
	if n(same) != n(all) || n(all) == 0 || n(other) != 0 {
		t.Errorf("connections: all %d, own netns %d, other netns %d", n(all), n(same), n(other))
	}
	if err := exec.Command(binary, "-r", sample, "--container", "abcd").Run(); err == nil {
		t.Error("--container on a replay was accepted")
	}
}
