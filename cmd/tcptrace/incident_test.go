package main

// The incident tcptrace exists for, end to end: a client in its own network
// namespace opens and closes a connection per request toward a server in
// another; with 64 ephemeral ports and tcp_tw_reuse=0 its TIME_WAIT pile
// exhausts the range and connect() fails with EADDRNOTAVAIL.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// incidentPy is the client (argv: mode, server, port, rate, seconds) and
// the server (argv: "serve", mode, addr, port) of the incident.
const incidentPy = `
import errno, json, os, socket, sys, threading, time
def serve(mode, addr, port):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port)); l.listen(512)
    print("ready", flush=True)
    def handle(c):
        try:
            c.recv(16); c.sendall(b"ok")
            if mode == "client-close":
                while c.recv(16): pass
        finally:
            c.close()
    while True:
        c, _ = l.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
def client(mode, addr, port, rate, secs):
    ok = fail = other = 0; first = None; start = time.time(); n = 0
    while time.time() - start < secs:
        s = socket.socket()
        try:
            s.connect((addr, port)); s.sendall(b"x"); s.recv(16)
            if mode == "server-close":
                while s.recv(16): pass
            ok += 1
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                fail += 1
                if first is None: first = time.time()
            else:
                other += 1
        finally:
            s.close()
        n += 1
        time.sleep(max(0, start + n / rate - time.time()))
    print(json.dumps({"pid": os.getpid(), "ok": ok, "eaddrnotavail": fail, "other": other, "first_fail": first}), flush=True)
if sys.argv[1] == "serve": serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else: client(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
`

// testHosts are two namespaces joined by veth: client 10.201.N.1, server 10.201.N.2.
type testHosts struct{ cli, srv, cliAddr, srvAddr string }

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newHosts(t *testing.T, n int) testHosts {
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, n)
	h := testHosts{cli: "ttc" + id, srv: "tts" + id,
		cliAddr: fmt.Sprintf("10.201.%d.1", n), srvAddr: fmt.Sprintf("10.201.%d.2", n)}
	run(t, "ip", "netns", "add", h.cli)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.cli).Run() })
	run(t, "ip", "netns", "add", h.srv)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.srv).Run() })
	run(t, "ip", "link", "add", "vc"+id, "netns", h.cli, "type", "veth", "peer", "name", "vs"+id, "netns", h.srv)
	for _, x := range [][3]string{{h.cli, "vc" + id, h.cliAddr}, {h.srv, "vs" + id, h.srvAddr}} {
		run(t, "ip", "-n", x[0], "addr", "add", x[2]+"/24", "dev", x[1])
		run(t, "ip", "-n", x[0], "link", "set", x[1], "up")
		run(t, "ip", "-n", x[0], "link", "set", "lo", "up")
	}
	run(t, "ip", "netns", "exec", h.cli, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40063", "net.ipv4.tcp_tw_reuse=0")
	return h
}

type clientResult struct {
	PID       uint32   `json:"pid"`
	OK        int      `json:"ok"`
	Failed    int      `json:"eaddrnotavail"`
	Other     int      `json:"other"`
	FirstFail *float64 `json:"first_fail"`
}

// incident runs server and client in h with mode, under a live tracer and a
// report, and returns the client's result, the stream and the report.
func incident(t *testing.T, h testHosts, mode string) (clientResult, []map[string]any, map[string]any, int) {
	py := t.TempDir() + "/incident.py"
	if err := os.WriteFile(py, []byte(incidentPy), 0o644); err != nil {
		t.Fatal(err)
	}
	live := startTracer(t, "--json", "--port", "8080")
	rep := startTracer(t, "report", "--json", "--port", "8080")
	startIncidentServer(t, h, py, mode)
	out := run(t, "ip", "netns", "exec", h.cli, "python3", py, mode, h.srvAddr, "8080", "20", "6")
	var cr clientResult
	if err := json.Unmarshal([]byte(out), &cr); err != nil {
		t.Fatalf("client said %q: %v", out, err)
	}
	time.Sleep(300 * time.Millisecond)
	rep.stop(t, syscall.SIGINT)
	ss := run(t, "ip", "netns", "exec", h.cli, "ss", "-Htan", "state", "time-wait", "dst", h.srvAddr, "dport", "=", ":8080")
	held := len(strings.Fields(strings.TrimSpace(ss))) / 4 // Recv-Q Send-Q Local Peer
	live.stop(t, syscall.SIGINT)
	var stream []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(live.stdout.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			stream = append(stream, m)
		}
	}
	var report map[string]any
	if err := json.Unmarshal(rep.stdout.Bytes(), &report); err != nil {
		t.Fatalf("report: %v: %s", err, rep.stdout.String())
	}
	return cr, stream, report, held
}

// startIncidentServer starts the incident's server (incidentPy at py) in
// h's server namespace, on :8080, until the test ends.
func startIncidentServer(t *testing.T, h testHosts, py, mode string) {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", h.srv, "python3", py, "serve", mode, h.srvAddr, "8080")
	so, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if l, _ := bufio.NewReader(so).ReadString('\n'); !strings.HasPrefix(l, "ready") {
		t.Fatalf("server did not start: %q", l)
	}
}

// reportTimeWait sums the report's TIME_WAIT toward addr:8080.
func reportTimeWait(report map[string]any, addr string) int {
	n := 0
	for _, x := range report["time_wait_by_destination"].([]any) {
		r := x.(map[string]any)
		if r["daddr"] == addr && r["dport"] == 8080.0 {
			n += int(r["time_wait_sockets"].(float64))
		}
	}
	return n
}

func TestIncidentPortExhaustion(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	t.Run("client closes first", func(t *testing.T) {
		h := newHosts(t, 1)
		cr, stream, report, ssHeld := incident(t, h, "client-close")
		if cr.Failed == 0 || cr.FirstFail == nil {
			t.Fatalf("client never hit EADDRNOTAVAIL: %+v", cr)
		}
		firstFail := time.Unix(0, int64(*cr.FirstFail*1e9))
		var warned time.Time
		failed, failedBeforeWarning := 0, 0
		for _, m := range stream {
			switch {
			case m["type"] == "warning" && m["kind"] == "port_exhaustion" && m["daddr"] == h.srvAddr && warned.IsZero():
				warned, _ = time.Parse(time.RFC3339Nano, m["time"].(string))
				t.Logf("warning: %v", m)
			case m["type"] == "connection" && m["end"] == "failed" && m["pid"] == float64(cr.PID):
				if m["err"] != "EADDRNOTAVAIL" {
					t.Errorf("failed connect with err %v, want EADDRNOTAVAIL", m["err"])
				}
				failed++
				if warned.IsZero() {
					failedBeforeWarning++
				}
			}
		}
		if warned.IsZero() || !warned.Before(firstFail) || failedBeforeWarning > 0 {
			t.Errorf("warning at %v, first EADDRNOTAVAIL at %v (%d failures streamed before it)", warned, firstFail, failedBeforeWarning)
		} else {
			t.Logf("warned %v before the first EADDRNOTAVAIL", firstFail.Sub(warned))
		}
		if failed != cr.Failed {
			t.Errorf("stream counted %d failed connects, client saw %d", failed, cr.Failed)
		}
		repFailed := 0
		for _, x := range report["failed_connects_by_destination"].([]any) {
			r := x.(map[string]any)
			if r["pid"] == float64(cr.PID) && r["err"] == "EADDRNOTAVAIL" && r["daddr"] == h.srvAddr {
				repFailed += int(r["count"].(float64))
			}
		}
		if repFailed != cr.Failed {
			t.Errorf("report counted %d failed connects, client saw %d", repFailed, cr.Failed)
		}
		closers := report["active_closers"].([]any)
		if len(closers) == 0 {
			t.Fatalf("no active closer in the report")
		}
		top := closers[0].(map[string]any)
		dests := top["destinations"].([]any)
		if top["pid"] != float64(cr.PID) || len(dests) == 0 || dests[0].(map[string]any)["daddr"] != h.srvAddr ||
			dests[0].(map[string]any)["dport"] != 8080.0 {
			t.Errorf("top active closer %v, want the client %d toward %s:8080", top, cr.PID, h.srvAddr)
		}
		// Its share is of its established connections (it closed each
		// first), its failed connects counted apart.
		if top["failed_connects"] != float64(cr.Failed) || top["established"] != top["active_closes"] {
			t.Errorf("top active closer: %v established, %v closed first, %v failed connects; want all established closed first and %d failed",
				top["established"], top["active_closes"], top["failed_connects"], cr.Failed)
		}
		got := reportTimeWait(report, h.srvAddr)
		if diff := got - ssHeld; ssHeld == 0 || diff*100 > ssHeld || -diff*100 > ssHeld {
			t.Errorf("report holds %d TIME_WAIT toward %s:8080, ss shows %d", got, h.srvAddr, ssHeld)
		}
		t.Logf("client %d: %d ok, %d EADDRNOTAVAIL; tcptrace: %d failed; TIME_WAIT report %d, ss %d",
			cr.PID, cr.OK, cr.Failed, failed, got, ssHeld)
	})
	t.Run("server closes first", func(t *testing.T) {
		h := newHosts(t, 2)
		cr, stream, report, ssHeld := incident(t, h, "server-close")
		if cr.Failed != 0 || cr.OK == 0 {
			t.Fatalf("client: %+v, want no failures", cr)
		}
		for _, m := range stream {
			if m["type"] == "warning" {
				t.Errorf("unexpected warning: %v", m)
			}
		}
		if got := reportTimeWait(report, h.srvAddr); got != 0 || ssHeld != 0 {
			t.Errorf("client holds TIME_WAIT: report %d, ss %d; want none", got, ssHeld)
		}
		t.Logf("client %d: %d ok, no TIME_WAIT on the client, no warning", cr.PID, cr.OK)
	})
}
