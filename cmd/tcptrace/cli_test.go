package main

// The command line as an SRE meets it (issue 16), through the binary: bad
// input refused at once, flags a mode does not use, a cookie that never
// came, captures through pipes, filters that repeat, the legend in --help
// and the capability that names the owners of sockets older than tracing.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// clRun runs the binary with args, stdin from in (nil: none), and returns
// its exit status, stdout and stderr.
func clRun(t *testing.T, in io.Reader, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// clRefused checks a command line is refused as a usage error: exit status
// 2, nothing on stdout, one line on stderr that starts with flag and holds
// want.
func clRefused(t *testing.T, args []string, flag, want string) {
	t.Helper()
	code, out, errs := clRun(t, nil, args...)
	msg := strings.TrimSuffix(errs, "\n")
	if code != 2 || out != "" || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "tcptrace: "+flag) || !strings.Contains(msg, want) {
		t.Errorf("%q: exit %d, stdout %d bytes, stderr %q; want exit 2, no stdout, one line starting %q with %q",
			args, code, len(out), errs, "tcptrace: "+flag, want)
	}
}

// TestBadValuesRefusedAtOnce: each bad value exits 2 with one line that
// names the flag and what it accepts, before anything else is printed (a
// replay's description of its capture, a live run's start-up lines).
func TestBadValuesRefusedAtOnce(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		flag, want string
	}{
		{[]string{"--duration", "-1s"}, "--duration -1s", "positive duration"},
		{[]string{"--duration", "0"}, "--duration 0s", "leave --duration out to trace until Ctrl-C"},
		{[]string{"--duration", "soon"}, "--duration soon", "positive duration"},
		{[]string{"--warn-within", "-5s"}, "--warn-within -5s", "positive duration"},
		{[]string{"--churn-rate", "-3"}, "--churn-rate -3", "positive number"},
		{[]string{"--churn-rate", "NaN"}, "--churn-rate NaN", "positive number"},
		{[]string{"--churn-life", "0"}, "--churn-life 0s", "positive duration"},
		{[]string{"--poll", "0"}, "--poll 0s", "1ms to 10s"},
		{[]string{"--poll", "1m"}, "--poll 1m0s", "1ms to 10s"},
		{[]string{"--max-conns", "0"}, "--max-conns 0", "1 to 16777216"},
		{[]string{"--max-conns", "-5"}, "--max-conns -5", "1 to 16777216"},
		{[]string{"--width", "10"}, "--width 10", "72 to 1000 columns"},
		{[]string{"--width", "5000"}, "--width 5000", "72 to 1000 columns"},
		{[]string{"--color", "rainbow"}, "--color rainbow", "auto, always or never"},
		{[]string{"-r", sample, "--color", "rainbow"}, "--color rainbow", "auto, always or never"},
		{[]string{"report", "-r", sample, "--color", "rainbow"}, "--color rainbow", "auto, always or never"},
		{[]string{"--ring-size", "3000"}, "--ring-size 3000", "power of two"},
		{[]string{"--ring-size", "0"}, "--ring-size 0", "power of two"},
		{[]string{"--ring-size", "-4MiB"}, "--ring-size -4MiB", "power of two"},
		{[]string{"--ring-size", "2GiB"}, "--ring-size 2GiB", "to 1GiB"},
		{[]string{"--ring-size", "99999999999999G"}, "--ring-size 99999999999999G", "power of two"},
		{[]string{"--port", "0"}, "--port 0", "1 to 65535"},
		{[]string{"--port", "6379", "--port", "70000"}, "--port 70000", "1 to 65535"},
		{[]string{"--port="}, `--port ""`, "1 to 65535"},
		{[]string{"--host", "10.0.0.0/33"}, "--host 10.0.0.0/33", "CIDR prefix"},
		{[]string{"-r", sample, "--host="}, `--host ""`, "CIDR prefix"},
		{[]string{"--pid", "0"}, "--pid 0", "process ID"},
		{[]string{"--comm", ""}, `--comm ""`, "1 to 15 bytes"},
		{[]string{"-w", "x.tcpt", "-C", "1KiB"}, "--rotate-size 1KiB", "at least 64KiB"},
		{[]string{"--ledger-period", "0"}, "unknown flag: --ledger-period", ""},
		{[]string{"replay"}, "replay", "capture file"},
	} {
		clRefused(t, tc.args, tc.flag, tc.want)
	}
}

// TestUnusedFlagsRefused: a flag the mode does not use is refused with
// exit status 2 and one line; where the mode uses it, it is accepted.
func TestUnusedFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		flag, want string
	}{
		{[]string{"serve", "--diagram"}, "--diagram", "serve does not use it"},
		{[]string{"serve", "--width", "100"}, "--width", "serve does not use it"},
		{[]string{"serve", "--state", "LISTEN"}, "--state", "only with --json"},
		{[]string{"report", "--diagram"}, "--diagram", "report does not use it"},
		{[]string{"report", "--no-summary"}, "--no-summary", "report does not use it"},
		{[]string{"report", "--state", "TIME_WAIT"}, "--state", "report does not use it"},
		{[]string{"report", "-r", sample, "--duration", "5s"}, "--duration", "report -r does not use it"},
		{[]string{"-r", sample, "--duration", "1s"}, "--duration", "a replay does not use it"},
		{[]string{"replay", sample, "--poll", "10ms"}, "--poll", "a replay does not use it"},
		{[]string{"-r", sample, "--ring-size", "8MiB"}, "--ring-size", "a replay does not use it"},
		{[]string{"-r", sample, "--json", "--width", "100"}, "--width", "not used with --json"},
		{[]string{"--json", "--color", "never"}, "--color", "not used with --json"},
		{[]string{"-r", sample, "--diagram", "--state", "LISTEN"}, "--state", "not used with --diagram"},
		{[]string{"-r", sample, "--diagram", "--json"}, "--diagram", "does not combine with --json"},
		{[]string{"-w", "-", "--json"}, "--json", "carries only the capture"},
		{[]string{"-w", "-", "--diagram"}, "--diagram", "carries only the capture"},
		{[]string{"-w", "-", "-C", "1MiB"}, "--rotate-size", "need a file"},
		{[]string{"-r", sample, "--container", "abcd"}, "--container", "live host"},
	} {
		clRefused(t, tc.args, tc.flag, tc.want)
	}
	for _, args := range [][]string{
		{"-r", sample, "--no-summary", "--width", "100", "--port", "6379", "--state", "TIME_WAIT"},
		{"-r", sample, "--diagram=aggregate", "--no-summary", "--ascii", "--max-conns", "1000"},
		{"report", "-r", sample, "--width", "100", "--warn-within", "30s"},
		{"report", "-r", sample, "--json", "--port", "6379"},
	} {
		if code, _, errs := clRun(t, nil, args...); code != 0 {
			t.Errorf("%q: exit %d: %s", args, code, errs)
		}
	}
}

// TestDiagramCookieNeverSeen: --diagram=COOKIE for a socket that never
// came says so at exit (status 0: the trace itself went well, as with a
// filter that matches nothing); for one that came, the ladder is drawn and
// nothing is said.
func TestDiagramCookieNeverSeen(t *testing.T) {
	code, out, errs := clRun(t, nil, "-r", sample, "--diagram=12345", "--no-summary")
	if code != 0 || out != "" || !strings.Contains(errs, "tcptrace: --diagram=12345: no socket with this cookie was traced") {
		t.Errorf("absent cookie: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	_, js, _ := clRun(t, nil, "-r", sample, "--json", "--no-summary", "--port", "6379")
	m := regexp.MustCompile(`"type":"connection".*?"cookie":(\d+)`).FindStringSubmatch(js)
	if m == nil {
		t.Fatal("no connection in the sample")
	}
	code, out, errs = clRun(t, nil, "-r", sample, "--diagram="+m[1], "--no-summary", "--ascii")
	if code != 0 || !strings.Contains(out, "active closer") || strings.Contains(errs, "--diagram") {
		t.Errorf("present cookie %s: exit %d, stdout %q, stderr %q", m[1], code, out, errs)
	}
}

// TestReadStdin: -r - (and replay -, report -r -) reads the capture from
// standard input and shows what reading the file shows.
func TestReadStdin(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-r", "FILE", "--json"},
		{"-r", "FILE", "--width", "100"},
		{"replay", "--diagram=aggregate", "FILE"},
		{"report", "--json", "-r", "FILE"},
	} {
		withFile := strings.Split(strings.ReplaceAll(strings.Join(args, "\x00"), "FILE", sample), "\x00")
		withStdin := strings.Split(strings.ReplaceAll(strings.Join(args, "\x00"), "FILE", "-"), "\x00")
		c1, want, _ := clRun(t, nil, withFile...)
		c2, got, errs := clRun(t, bytes.NewReader(data), withStdin...)
		if c1 != 0 || c2 != 0 || got != want || len(got) == 0 {
			t.Errorf("%q: exit %d/%d, stdin output differs from the file's (%d/%d bytes): %s", withStdin, c1, c2, len(got), len(want), errs)
		}
		if !strings.Contains(errs, "standard input") && args[0] != "report" {
			t.Errorf("%q: stderr does not name standard input: %s", withStdin, errs)
		}
	}
}

// TestCaptureToTerminalRefused: -w - with standard output a terminal (as
// tcpdump refuses to write a capture to one) exits 2 with one line saying
// what to do, before tracing, and writes nothing to the terminal.
func TestCaptureToTerminalRefused(t *testing.T) {
	cmd := exec.Command(binary, "-w", "-", "--port", "6379")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := testutil.RunOnTerminal(t, cmd, 80)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("-w - to a terminal: %v, want exit 2; stderr %q", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(out) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "standard output is a terminal") ||
		!strings.Contains(lines[0], "redirect") {
		t.Errorf("-w - to a terminal: terminal got %q, stderr %q; want nothing, and one line saying to redirect", out, stderr.String())
	}
}

// TestOverwriteRefused: -w onto an existing file is refused before tracing
// starts, naming --overwrite; the file is left as it was.
func TestOverwriteRefused(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "old.tcpt")
	if err := os.WriteFile(f, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f+"2.1", []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-w", f}, {"-w", f + "2", "-C", "1MiB"}} {
		code, out, errs := clRun(t, nil, append(args, "--duration", "1s")...)
		msg := strings.TrimSuffix(errs, "\n")
		if code != 1 || out != "" || strings.Contains(msg, "\n") || !strings.Contains(msg, "exists; --overwrite replaces it") {
			t.Errorf("%q: exit %d, stderr %q; want status 1 and one line naming --overwrite", args, code, errs)
		}
	}
	if b, _ := os.ReadFile(f); string(b) != "keep" {
		t.Errorf("the existing file was changed: %q", b)
	}
}

// TestHelpLegend: --help explains the marks of the output.
func TestHelpLegend(t *testing.T) {
	code, out, _ := clRun(t, nil, "--help")
	for _, want := range []string{"Reading the output", "*ESTAB→FIN_WAIT1", "active closer", "!ESTAB→CLOSE", "reset",
		"~SYN_RECV→ESTAB", "inferred", "IN-OLD", "!!", "owner unknown", "◆ active closer"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("--help (exit %d) lacks %q", code, want)
		}
	}
}

// TestRepeatedFiltersReplay: --port and --host repeat (either of them) and
// --host takes a prefix, on the shipped capture.
func TestRepeatedFiltersReplay(t *testing.T) {
	count := func(args ...string) int {
		code, out, errs := clRun(t, nil, append([]string{"-r", sample, "--json", "--no-summary"}, args...)...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errs)
		}
		return strings.Count(out, `"type":"connection"`)
	}
	redis, nginx := count("--port", "6379"), count("--port", "8080")
	if redis == 0 || nginx == 0 {
		t.Fatalf("the sample has %d redis and %d nginx connections", redis, nginx)
	}
	if n := count("--port", "6379", "--port", "8080"); n != redis+nginx {
		t.Errorf("--port 6379 --port 8080: %d connections, want %d+%d", n, redis, nginx)
	}
	if n := count("--port", "6379,8080"); n != redis+nginx {
		t.Errorf("--port 6379,8080: %d connections, want %d+%d", n, redis, nginx)
	}
	v4, v6, all := count("--host", "127.0.0.1"), count("--host", "::1"), count()
	if n := count("--host", "127.0.0.0/8"); n != v4 || n == 0 {
		t.Errorf("--host 127.0.0.0/8: %d connections, --host 127.0.0.1 %d", n, v4)
	}
	if n := count("--host", "127.0.0.0/8", "--host", "::1"); n != all || v4+v6 != all {
		t.Errorf("--host 127.0.0.0/8 --host ::1: %d connections, want all %d (%d+%d)", n, all, v4, v6)
	}
	if n := count("--host", "10.0.0.0/8"); n != 0 {
		t.Errorf("--host 10.0.0.0/8: %d connections, want none", n)
	}
}

// clPorts reserves n distinct free loopback ports.
func clPorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// clConnect makes n loopback connections to a fresh listener on port, the
// client closing first, and waits until all have ended.
func clConnect(t *testing.T, port, n int) {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	var d net.Dialer
	d.SetMultipathTCP(false)
	for range n {
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	<-done
	time.Sleep(200 * time.Millisecond) // the last softirq transitions
}

// clConns counts the JSON connection records with port at either end.
func clConns(out string, port int) int {
	p := strconv.Itoa(port)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"type":"connection"`) && (strings.Contains(l, `"sport":`+p+`,`) || strings.Contains(l, `"dport":`+p+`,`)) {
			n++
		}
	}
	return n
}

// TestRepeatedFiltersLive: live, with several ports or a prefix the kernel
// filter is off and userspace keeps exactly the connections asked for.
func TestRepeatedFiltersLive(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := clPorts(t, 3)
	a, b, c := p[0], p[1], p[2]
	two := startTracer(t, "--json", "--no-summary", "--port", strconv.Itoa(a), "--port", strconv.Itoa(b))
	pfx := startTracer(t, "--json", "--no-summary", "--host", "127.0.0.0/8", "--host", "::1", "--port", strconv.Itoa(c))
	for _, port := range p {
		clConnect(t, port, 3)
	}
	two.stop(t, syscall.SIGINT)
	pfx.stop(t, syscall.SIGINT)
	// Each connection is two sockets (client, server) and each listener one.
	if na, nb, nc := clConns(two.stdout.String(), a), clConns(two.stdout.String(), b), clConns(two.stdout.String(), c); na < 6 || nb < 6 || nc != 0 {
		t.Errorf("--port %d --port %d: %d, %d and %d (port %d) connection records, want ≥ 6, ≥ 6 and 0", a, b, na, nb, nc, c)
	}
	if na, nc := clConns(pfx.stdout.String(), a), clConns(pfx.stdout.String(), c); na != 0 || nc < 6 {
		t.Errorf("--host 127.0.0.0/8 --host ::1 --port %d: %d records of port %d, %d of port %d; want 0 and ≥ 6", c, na, a, nc, c)
	}
}

// TestCapturePipe: tcptrace -w - | tcptrace -r -, live: standard output
// carries only the capture (the reader reads it to its end record), the
// reader shows connections while the writer still runs, and both end
// cleanly.
func TestCapturePipe(t *testing.T) {
	testutil.RequirePrivileged(t)
	port := clPorts(t, 1)[0]
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w := exec.Command(binary, "-w", "-", "--port", strconv.Itoa(port))
	r := exec.Command(binary, "-r", "-", "--json", "--no-summary")
	w.Stdout, r.Stdin = pw, pr
	rout, err := r.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var rerr bytes.Buffer
	r.Stderr = &rerr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Process.Kill() })
	_, wStderr, wait := testutil.StartTracer(t, w)
	pw.Close()
	pr.Close()

	var seen atomic.Int64
	var rbuf bytes.Buffer
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rout)
		for sc.Scan() {
			rbuf.WriteString(sc.Text() + "\n")
			seen.Store(int64(clConns(rbuf.String(), port)))
		}
	}()
	clConnect(t, port, 3)
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := seen.Load(); n < 6 {
		t.Errorf("the reader showed %d connection records while the writer ran, want ≥ 6", n)
	}
	w.Process.Signal(syscall.SIGINT)
	if err := wait(); err != nil {
		t.Fatalf("writer: %v: %s", err, wStderr)
	}
	select {
	case <-lines: // the writer's end closed the pipe: the reader read to its end
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end within 10s of the writer")
	}
	if err := r.Wait(); err != nil {
		t.Fatalf("reader: %v: %s", err, rerr.String())
	}
	if !strings.Contains(wStderr.String(), "recording to standard output") {
		t.Errorf("the writer does not say where it records: %s", wStderr)
	}
	if strings.Contains(rerr.String(), "cut short") || !strings.Contains(rerr.String(), "replaying standard input") {
		t.Errorf("reader's stderr: %s", rerr.String())
	}
	if n := clConns(rbuf.String(), port); n < 6 {
		t.Errorf("the reader showed %d connection records, want ≥ 6:\n%s", n, rbuf.String())
	}
}

// TestCaptureStdoutOnly: with -w - standard output holds the capture and
// nothing else: it starts with the capture's magic and replays whole.
func TestCaptureStdoutOnly(t *testing.T) {
	testutil.RequirePrivileged(t)
	port := clPorts(t, 1)[0]
	tr := startTracer(t, "-w", "-", "--port", strconv.Itoa(port))
	clConnect(t, port, 2)
	tr.stop(t, syscall.SIGINT)
	got := tr.stdout.Bytes()
	if !bytes.HasPrefix(got, []byte(capture.Magic)) {
		t.Fatalf("stdout does not start with the capture's magic: %q", got[:min(len(got), 32)])
	}
	rd, err := capture.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		var ev events.Event
		if err := rd.Next(&ev); err != nil {
			break
		}
		n++
	}
	if rd.Trailer() == nil || n == 0 {
		t.Errorf("the capture on stdout: %d events, end record %v, cut %v", n, rd.Trailer(), rd.Truncated())
	}
	if !strings.Contains(tr.stderr.String(), "tcptrace summary") {
		t.Errorf("no summary on stderr: %s", tr.stderr)
	}
}

// TestOwnerCapabilityNote: with CAP_BPF and CAP_PERFMON only, one line at
// start says that the owners of sockets older than tracing show as "? ?"
// and which capabilities would name them; with those too, nothing is said.
func TestOwnerCapabilityNote(t *testing.T) {
	testutil.RequirePrivileged(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	bin := staticBinary(t)
	const note = `show as "? ?": naming them from /proc/*/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH`
	for caps, want := range map[string]string{
		"+bpf,+perfmon":                              "missing CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
		"+bpf,+perfmon,+dac_read_search":             "missing CAP_SYS_PTRACE\n",
		"+bpf,+perfmon,+sys_ptrace,+dac_read_search": "",
	} {
		cmd := capsCommand(bin, caps, "--json", "--no-summary", "--port", "9", "--duration", "1s")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("caps %s: %v: %s", caps, err, errb.String())
		}
		n := strings.Count(errb.String(), note)
		switch {
		case want == "" && n != 0:
			t.Errorf("caps %s: the note was printed:\n%s", caps, errb.String())
		case want != "" && (n != 1 || !strings.Contains(errb.String(), note+"; "+want)):
			t.Errorf("caps %s: want the note once, ending %q:\n%s", caps, want, errb.String())
		}
	}
}
