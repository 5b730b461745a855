// Package soak floods the tracer with more loopback connections than it can
// trace and checks that it fails loudly, not silently: every event that does
// not reach userspace is counted in the kernel and reported, memory stays
// bounded, and tracing is exact again once the flood stops.
//
// The default run is bounded for CI (three variants of a few seconds each);
// TCPTRACE_SOAK=5m runs each flood for that long.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// Transitions by construction: a client that connects and aborts (SO_LINGER
// 0) makes CLOSE→SYN_SENT, SYN_SENT→ESTABLISHED, ESTABLISHED→CLOSE; its
// server socket LISTEN→SYN_RECV, SYN_RECV→ESTABLISHED, ESTABLISHED→CLOSE. No
// TIME_WAIT is left, so the flood never runs out of ports. The listener,
// opened before the tracer, adds LISTEN→CLOSE.
const (
	perClient   = 3
	perServer   = 3
	perListener = 1
	// peakRSSBound is the tracer's allowed VmHWM: the 4 MiB ring, the
	// --max-conns table and the Go heap, with room for the runtime.
	peakRSSBound = 96 << 20
	maxConns     = 512
	// selfTestEvents: the start-up self-test's connection (client and
	// server aborted, listener) passes the kernel filter as tcptrace's own;
	// userspace hides it, but under --simulate-drops the kernel may drop
	// (and count) some of these.
	selfTestEvents = 8
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tcptrace-soak")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tcptrace")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/tcptrace").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func floodDuration() time.Duration {
	if v := os.Getenv("TCPTRACE_SOAK"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 6 * time.Second
}

// counts is what the test reads from the tracer's JSON stream.
type counts struct {
	delivered    uint64 // kernel transitions of the workload (not inferred)
	foreign      uint64 // the port's transitions in other network namespaces
	inferred     uint64
	lostLines    int
	lostSum      uint64 // sum of the lost lines' counts
	lastLostTot  uint64
	summary      map[string]any
	byCookie     map[uint64][]string // only for the recovery connections
	recoveryPort map[uint16]bool
}

type reader struct {
	mu     sync.Mutex
	c      counts
	netns  []byte
	lines  atomic.Uint64
	done   chan struct{}
	errMsg string
}

// read counts the stream cheaply: the flood makes hundreds of thousands of lines.
func (r *reader) read(rd io.Reader) {
	defer close(r.done)
	br := bufio.NewReaderSize(rd, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			r.lines.Add(1)
			r.line(line)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return
		}
	}
}

func (r *reader) line(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case bytes.HasPrefix(b, []byte(`{"type":"transition"`)):
		if bytes.Contains(b, []byte(`"inferred":true`)) {
			r.c.inferred++
		} else if bytes.Contains(b, r.netns) {
			r.c.delivered++
		} else {
			r.c.foreign++
		}
		if len(r.c.recoveryPort) > 0 {
			var t struct {
				Cookie   uint64 `json:"cookie"`
				Sport    uint16 `json:"sport"`
				Dport    uint16 `json:"dport"`
				Old      string `json:"old"`
				New      string `json:"new"`
				Inferred bool   `json:"inferred"`
			}
			if json.Unmarshal(b, &t) == nil && (r.c.recoveryPort[t.Sport] || r.c.recoveryPort[t.Dport] || r.c.byCookie[t.Cookie] != nil) {
				s := t.Old + ">" + t.New
				if t.Inferred {
					s = "~" + s
				}
				r.c.byCookie[t.Cookie] = append(r.c.byCookie[t.Cookie], s)
			}
		}
	case bytes.HasPrefix(b, []byte(`{"type":"lost"`)):
		var l struct{ Count, Total uint64 }
		if err := json.Unmarshal(b, &l); err != nil {
			r.errMsg = fmt.Sprintf("bad lost line %q", b)
		}
		r.c.lostLines++
		r.c.lostSum += l.Count
		r.c.lastLostTot = l.Total
	case bytes.HasPrefix(b, []byte(`{"type":"summary"`)):
		if err := json.Unmarshal(b, &r.c.summary); err != nil {
			r.errMsg = fmt.Sprintf("bad summary %q", b)
		}
	}
}

// workload is the flood: connect+abort loops against one listener.
type workload struct {
	ln       net.Listener
	port     int
	dials    atomic.Uint64 // successful connects
	failed   atomic.Uint64 // connects that failed (their transitions are counted apart)
	accepted atomic.Uint64
}

func newWorkload(t *testing.T) *workload {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	for i := 0; i < 2; i++ {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				w.accepted.Add(1)
				go func() {
					buf := make([]byte, 64)
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
					c.Close()
				}()
			}
		}()
	}
	return w
}

func (w *workload) flood(d time.Duration, workers int) {
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dl net.Dialer
			dl.SetMultipathTCP(false)
			for time.Now().Before(stop) {
				c, err := dl.Dial("tcp4", w.ln.Addr().String())
				if err != nil {
					w.failed.Add(1)
					continue
				}
				w.dials.Add(1)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	wg.Wait()
}

// graceful makes n connections whose client closes first, each from a
// local port chosen beforehand and passed to register before it is used:
// each must then be traced completely, nothing inferred.
func (w *workload) graceful(t *testing.T, n int, register func(port uint16)) {
	for i := 0; i < n; i++ {
		tmp, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tmp.Addr().(*net.TCPAddr).Port
		tmp.Close()
		register(uint16(port))
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
		dl.SetMultipathTCP(false)
		c, err := dl.Dial("tcp4", w.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

func vmHWM(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

func num(m map[string]any, path ...string) uint64 {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[p]
	}
	f, _ := v.(float64)
	return uint64(f)
}

// TestSoak floods the tracer in three variants: the default ring, a ring of
// one page (the kernel loses most events), and --simulate-drops 5 (the
// kernel drops every 5th event: losses are forced deterministically). Each
// checks the loss accounting, the memory bound and recovery.
func TestSoak(t *testing.T) {
	testutil.RequirePrivileged(t)
	testutil.Flood(t)
	netns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(netns, "net:["), "]")
	d := floodDuration()
	workers := 2 * runtime.GOMAXPROCS(0)
	for _, v := range []struct {
		name     string
		args     []string
		wantLoss bool
		every    uint64 // --simulate-drops N
	}{
		{"default-ring", nil, false, 0},
		{"ring-4KiB", []string{"--ring-size", "4KiB"}, true, 0},
		{"simulate-drops-5", []string{"--simulate-drops", "5"}, true, 5},
	} {
		t.Run(v.name, func(t *testing.T) {
			w := newWorkload(t)
			args := append([]string{"--json", "--port", strconv.Itoa(w.port), "--max-conns", strconv.Itoa(maxConns)}, v.args...)
			cmd := exec.Command(binary, args...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errb bytes.Buffer
			pr, pw, _ := os.Pipe()
			cmd.Stderr = pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			defer cmd.Process.Kill()
			r := &reader{netns: []byte(`"netns":` + ino + `,`), done: make(chan struct{})}
			r.c.byCookie = map[uint64][]string{}
			r.c.recoveryPort = map[uint16]bool{}
			go r.read(stdout)
			ready, _ := testutil.WatchReady(pr, func(l string) { errb.WriteString(l + "\n") })
			if !<-ready {
				t.Fatalf("tcptrace did not start: %s", errb.String())
			}

			// The flood.
			start := time.Now()
			w.flood(d, workers)
			floodTime := time.Since(start)
			// Wait for stragglers (children reset before accept are still
			// accepted), then for the tracer to drain.
			for i := 0; i < 100 && w.accepted.Load() < w.dials.Load(); i++ {
				time.Sleep(20 * time.Millisecond)
			}
			drain(r)

			// Recovery: the load is gone; a few graceful connections are
			// traced completely.
			const grace = 5
			w.graceful(t, grace, func(p uint16) {
				r.mu.Lock()
				r.c.recoveryPort[p] = true
				r.mu.Unlock()
			})
			w.ln.Close()
			time.Sleep(300 * time.Millisecond)
			drain(r)
			hwm, err := vmHWM(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Process.Signal(syscall.SIGINT)
			<-r.done
			if err := cmd.Wait(); err != nil {
				t.Fatalf("tcptrace: %v: %s", err, errb.String())
			}
			if r.errMsg != "" {
				t.Fatal(r.errMsg)
			}
			c := r.c
			if c.summary == nil {
				t.Fatalf("no summary line")
			}
			floodConns := w.dials.Load()
			// Failed connects (none expected on loopback) would make
			// CLOSE→SYN_SENT→CLOSE: 2 each.
			generated := perClient*floodConns + perServer*w.accepted.Load() + 2*w.failed.Load() + (10-perServer)*grace + perListener
			ring, rec := num(c.summary, "lost", "ring"), num(c.summary, "lost", "recursion")
			total := num(c.summary, "lost", "total")
			t.Logf("%s: %d conns in %v (%.0f/s), %d failed; generated %d transitions; delivered %d, lost ring %d + recursion %d (%.1f%%); %d lost lines; inferred %d; evicted %d, open %d; peak RSS %.1f MiB; foreign %d",
				v.name, floodConns, floodTime.Round(time.Millisecond), float64(floodConns)/floodTime.Seconds(), w.failed.Load(), generated,
				c.delivered, ring, rec, 100*float64(ring+rec)/float64(generated), c.lostLines, c.inferred,
				num(c.summary, "evicted"), num(c.summary, "open"), float64(hwm)/(1<<20), c.foreign)

			// Nothing silently lost: every generated transition was
			// delivered or counted lost. Recursion misses are not per port
			// (the program did not run), so they bound from above only.
			if c.delivered+ring+rec < generated {
				t.Errorf("silent loss: delivered %d + lost %d+%d < generated %d", c.delivered, ring, rec, generated)
			}
			slack := uint64(0)
			if v.every > 0 {
				slack = selfTestEvents/v.every + 1
			}
			if c.delivered+ring > generated+c.foreign+slack {
				t.Errorf("delivered %d + ring losses %d > generated %d: duplicates or foreign events", c.delivered, ring, generated)
			}
			if rec == 0 && c.foreign == 0 && (c.delivered+ring < generated || c.delivered+ring > generated+slack) {
				t.Errorf("not exact: delivered %d + lost %d != generated %d", c.delivered, ring, generated)
			}
			// Reported: the stream's lost lines add up to the summary.
			if total != ring+rec {
				t.Errorf("summary lost total %d != ring %d + recursion %d", total, ring, rec)
			}
			if total > 0 && (c.lostLines == 0 || c.lastLostTot != total || c.lostSum != total) {
				t.Errorf("lost %d but stream says: %d lost lines, sum %d, last total %d", total, c.lostLines, c.lostSum, c.lastLostTot)
			}
			if v.wantLoss && ring == 0 {
				t.Errorf("%s: no ring losses", v.name)
			}
			if v.every > 0 && rec == 0 {
				// The kernel drops exactly every Nth event it would submit.
				want := (c.delivered + ring) / v.every
				if ring < want-1 || ring > want+1 {
					t.Errorf("--simulate-drops %d: %d dropped of %d events, want %d", v.every, ring, c.delivered+ring, want)
				}
			}
			// Bounded: the table stays at its cap, evictions are counted,
			// peak RSS stays under the bound.
			if open := num(c.summary, "open"); open > maxConns {
				t.Errorf("open %d > --max-conns %d", open, maxConns)
			}
			// Connections end (CLOSE) and leave the table; only those whose
			// end was lost stay until evicted.
			if v.wantLoss && num(c.summary, "evicted") == 0 {
				t.Errorf("no evictions although %d events were lost from %d connections through a table of %d", ring, floodConns, maxConns)
			}
			if hwm > peakRSSBound {
				t.Errorf("peak RSS %d MiB > %d MiB", hwm>>20, peakRSSBound>>20)
			}
			// Recovery: each graceful connection's client and server were
			// traced completely, with no inferred step (except under
			// --simulate-drops, which goes on dropping).
			if v.every > 0 {
				return
			}
			complete := 0
			for _, seq := range c.byCookie {
				s := strings.Join(seq, " ")
				if strings.Contains(s, "~") {
					t.Errorf("recovery connection with inferred steps: %s", s)
				}
				// The client's end: its handover to a timewait socket, in
				// TIME_WAIT (from FIN_WAIT2, or FIN_WAIT1/CLOSING when the
				// peer's FIN beat our ACK) or as an orphaned FIN_WAIT2
				// (closed before the peer's FIN came: FIN_WAIT2>CLOSE), both
				// races of a loaded machine; the server's LAST_ACK>CLOSE.
				if strings.HasSuffix(s, ">TIME_WAIT") || strings.HasSuffix(s, "FIN_WAIT2>CLOSE") || strings.HasSuffix(s, "LAST_ACK>CLOSE") {
					complete++
				}
			}
			if complete != 2*grace {
				t.Errorf("recovery: %d sockets traced to their end, want %d: %v", complete, 2*grace, c.byCookie)
			}
		})
	}
}

// drain waits until the tracer's output stops growing.
func drain(r *reader) {
	last := r.lines.Load()
	for i := 0; i < 200; i++ {
		time.Sleep(150 * time.Millisecond)
		n := r.lines.Load()
		if n == last {
			return
		}
		last = n
	}
}
