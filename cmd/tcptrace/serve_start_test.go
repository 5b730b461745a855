package main

// Tests of what `tcptrace serve` answers from its start: every counter at
// the first scrape, the TIME_WAIT and forecast series as soon as the
// namespaces' tables are read, with their netns, and the page at /.

import (
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/testutil"
	"github.com/tcptrace/tcptrace/internal/testutil/browser"
)

// TestServeSeriesFromStart: a namespace whose 64 ephemeral ports are all
// held in TIME_WAIT before serve starts. The first scrape has the
// counters at 0; the TIME_WAIT and forecast series of its destination,
// labelled with its netns, are there once the start-up read is told.
func TestServeSeriesFromStart(t *testing.T) {
	testutil.RequirePrivileged(t)
	lo := strconv.Itoa(testutil.PortLo)
	ns := testutil.NewNetns(t, map[string]string{"ip_local_port_range": lo + " " + strconv.Itoa(testutil.PortLo+63),
		"tcp_tw_reuse": "0"})
	if err := ns.Do(func() error {
		_, err := testutil.MakeTimeWait([3]byte{127, 0, 0}, [4]byte{127, 0, 0, 1}, 80, 64, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tr, maddr := startServe(t, "--heartbeat", "200ms")
	first := scrape(t, maddr)
	for _, k := range []string{
		`tcptrace_connect_failures_total{error="EADDRNOTAVAIL"}`,
		`tcptrace_connect_failures_total{error="ECONNREFUSED"}`,
		`tcptrace_connections_finished_total{closer="none",end="failed"}`,
		`tcptrace_connections_finished_total{closer="local",end="graceful"}`,
		`tcptrace_transitions_total{from="FIN_WAIT2",to="TIME_WAIT"}`,
		`tcptrace_active_closes_total{comm="other",container="other"}`,
		`tcptrace_userspace_drops_total{cause="evicted"}`,
		`tcptrace_kernel_events_lost_total{cause="ring_full"}`,
	} {
		if _, ok := first[k]; !ok {
			t.Errorf("first scrape lacks %s", k)
		}
	}
	if v := first[`tcptrace_connect_failures_total{error="EADDRNOTAVAIL"}`]; v != 0 {
		t.Errorf("EADDRNOTAVAIL failures %v at start", v)
	}

	// The start-up read is told on stderr; the series follow at once.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(tr.stderr.String(), "predate tracing") {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up read line: %s", tr.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	read := time.Now()
	labels := `{destination="127.0.0.1:80",netns="` + strconv.FormatUint(uint64(ns.Inode), 10) + `"}`
	tw, fc := "tcptrace_time_wait_sockets"+labels, "tcptrace_port_exhaustion_forecast_seconds"+labels
	var got map[string]float64
	for {
		got = scrape(t, maddr)
		_, okTW := got[tw]
		_, okFC := got[fc]
		if okTW && okFC || time.Since(read) > 2*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(read)
	if v, ok := got[tw]; !ok || v != 64 {
		t.Errorf("%s = %v (present %v), want 64", tw, v, ok)
	}
	if v, ok := got[fc]; !ok || v != 0 {
		t.Errorf("%s = %v (present %v), want 0: every port is held", fc, v, ok)
	}
	if took > 500*time.Millisecond {
		t.Errorf("the series came %v after the start-up read", took)
	}
	for _, k := range []string{`tcptrace_time_wait_sockets{destination="other",netns="other"}`,
		`tcptrace_orphan_fin_wait2_sockets{destination="other",netns="other"}`} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s once the tables are read", k)
		}
	}
	// The namespace's settings, for a dashboard to draw TIME_WAIT against.
	nsLabel := `{netns="` + strconv.FormatUint(uint64(ns.Inode), 10) + `"}`
	if v, ok := got[`tcptrace_ephemeral_ports`+nsLabel]; !ok || v != 64 {
		t.Errorf("tcptrace_ephemeral_ports%s = %v (present %v), want 64", nsLabel, v, ok)
	}
	if v, ok := got[`tcptrace_max_tw_buckets`+nsLabel]; !ok || v <= 0 {
		t.Errorf("tcptrace_max_tw_buckets%s = %v (present %v)", nsLabel, v, ok)
	}
	if v, ok := got[`tcptrace_port_exhaustion_forecast_seconds{destination="other",netns="other"}`]; ok && math.IsNaN(v) {
		t.Errorf("forecast of the other destinations is NaN")
	}
	tr.stop(t, syscall.SIGTERM)
}

// TestServeRootPage: / answers the live HTML report of what the agent
// traced (connections closed first toward a port show up in its chart and
// tables), which links /metrics and /healthz, reloads itself, and in a
// real browser logs no error and fetches nothing; other paths are not found.
func TestServeRootPage(t *testing.T) {
	testutil.RequirePrivileged(t)
	addr := freePort(t)
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	tr, maddr := startServe(t, "--port", strconv.Itoa(port))
	get := func() (int, string, string) {
		resp, err := http.Get("http://" + maddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	get() // the page is rendered while it is watched
	closeKinds(t, addr, 3)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, ctype, b := get()
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/html") {
			t.Fatalf("GET /: %d %s", code, ctype)
		}
		body = b
		if strings.Contains(body, `<svg class="timeline"`) && strings.Contains(body, `<svg class="ladder"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, want := range []string{`<a href="/metrics">`, `<a href="/healthz">`, `http-equiv="refresh"`,
		`<svg class="timeline"`, `data-dest="127.0.0.1:` + strconv.Itoa(port), `<svg class="ladder"`, "closed first"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %s:\n%s", want, body)
		}
	}
	p := browser.Open(t, "http://"+maddr+"/", 1000, 900)
	p.Screenshot(t, filepath.Join(t.ArtifactDir(), "serve.png"))
	if c := p.Console(); len(c) > 0 {
		t.Errorf("console: %q", c)
	}
	if r := p.Requests(); len(r) > 0 {
		t.Errorf("the page fetched %q", r)
	}
	resp, err := http.Get("http://" + maddr + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", resp.StatusCode)
	}
	tr.stop(t, syscall.SIGTERM)
}

// TestServeJSONSchema: what serve --json streams for every close kind is
// valid against docs/tcptrace.schema.json, one type per member name.
func TestServeJSONSchema(t *testing.T) {
	testutil.RequirePrivileged(t)
	addr := freePort(t)
	tr, _ := startServe(t, "--port", strings.TrimPrefix(addr, "127.0.0.1:"), "--json")
	closeKinds(t, addr, 2)
	time.Sleep(500 * time.Millisecond)
	tr.stop(t, syscall.SIGTERM)
	out := tr.stdout.Bytes()
	if !strings.Contains(string(out), `"type":"connection"`) {
		t.Fatalf("no connection record: %s", out)
	}
	rendertest.ValidateJSONLines(t, "serve --json", out)
	rendertest.FieldTypes{}.Check(t, "serve --json", out)
}
