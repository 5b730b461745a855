package soak

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// fds lists this process's open file descriptors with their targets.
func fds(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		m[e.Name()] = l
	}
	return m
}

// ownPrograms returns the IDs of the BPF programs this process holds
// (from /proc/self/fdinfo: program and link descriptors name them).
func ownPrograms(t *testing.T) map[ebpf.ProgramID]bool {
	t.Helper()
	ids := map[ebpf.ProgramID]bool{}
	files, _ := filepath.Glob("/proc/self/fdinfo/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[ebpf.ProgramID(id)] = true
				}
			}
		}
	}
	return ids
}

// TestProbeOpenCloseNoLeak opens, reads from and closes the probe 25 times
// in this process (self-test included, and once with Stop before Close):
// afterwards the process holds exactly the file descriptors it held before,
// and none of the programs it loaded is still loaded.
func TestProbeOpenCloseNoLeak(t *testing.T) {
	testutil.RequirePrivileged(t)
	// Warm up what the runtime and the library open once (epoll, BTF).
	p, err := probe.Open(probe.Options{RingSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	runtime.GC()
	before := fds(t)
	mine := map[ebpf.ProgramID]bool{}
	perOpen := 0 // programs one probe loads: set_state, and the timewait timer programs
	for i := 0; i < 25; i++ {
		p, err := probe.Open(probe.Options{RingSize: 1 << 16, PollInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		own := ownPrograms(t)
		if i == 0 {
			perOpen = len(own)
		} else if len(own) != perOpen {
			t.Errorf("open %d holds %d programs, the first held %d", i, len(own), perOpen)
		}
		for id := range own {
			mine[id] = true
		}
		if i%5 == 4 {
			// Stop, drain to EOF, then Close: the path a signal takes.
			p.Stop()
			var ev events.Event
			for j := 0; j < 1e6 && p.Next(&ev) == nil; j++ {
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	runtime.GC()
	after := fds(t)
	if len(after) != len(before) {
		var extra []string
		for fd, l := range after {
			if before[fd] != l {
				extra = append(extra, fd+"→"+l)
			}
		}
		sort.Strings(extra)
		t.Errorf("file descriptors: %d before, %d after 25 Open/Close: new %v", len(before), len(after), extra)
	}
	if perOpen == 0 || len(mine) != 25*perOpen {
		t.Errorf("%d distinct programs held over 25 opens of %d programs each, want %d", len(mine), perOpen, 25*perOpen)
	}
	if left := ownPrograms(t); len(left) != 0 {
		t.Errorf("still holding programs %v", left)
	}
	deadline := time.Now().Add(3 * time.Second)
	for id := range mine {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Errorf("program %d still loaded after Close", id)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
