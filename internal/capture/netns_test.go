package capture

import (
	"bytes"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestNetnsRecordsLiveSysctls: a capture's namespace record holds what the
// live diagnosis reads (ledger.ReadSysctls), tcp_tw_reuse_delay included,
// so that a replay forecasts from the same sysctls as the live run.
func TestNetnsRecordsLiveSysctls(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := testutil.NewNetns(t, map[string]string{"ip_local_port_range": "40000 40100",
		"tcp_tw_reuse": "1", "tcp_fin_timeout": "17", "tcp_tw_reuse_delay": "2500"})
	live, err := ledger.ReadSysctls(ledger.Netns{Inode: ns.Inode, Path: ns.Path})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{Tool: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ev := events.Event{Time: 1, Cookie: 7, Netns: ns.Inode, Old: events.Close, New: events.SynSent}
	if err := w.Write(&ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next(&ev) == nil {
	}
	var host, rec *Netns
	for _, n := range r.Header().Netns {
		switch n.Inode {
		case ns.Inode:
			rec = n
		case r.Header().HostNetns:
			host = n
		}
	}
	if rec == nil || host == nil {
		t.Fatalf("namespace records %+v: want the host's and %d", r.Header().Netns, ns.Inode)
	}
	if !maps.Equal(rec.Sysctls, live) || !strings.HasPrefix(rec.Via, "setns ") {
		t.Errorf("recorded %+v, want via setns the live read %v", rec, live)
	}
	s := diagnosis.ParseSysctls(rec.Sysctls)
	if s.ReuseDelay != 2500*time.Millisecond || s.PortLo != 40000 || s.PortHi != 40100 || s.TwReuse != 1 ||
		s.FinTimeout != 17*time.Second {
		t.Errorf("replayed sysctls %+v", s)
	}
	if host.Via != "host" {
		t.Errorf("host namespace read via %q, want host", host.Via)
	}
	for _, name := range ledger.SysctlNames {
		if v, ok := host.Sysctls[name]; !ok || v == Unknown {
			t.Errorf("host namespace: %s = %q (recorded: %v)", name, v, ok)
		}
	}
}

// TestReplayWithoutReuseDelay: a capture recorded before tcp_tw_reuse_delay
// was (testdata/sample.tcpt) replays with the kernel's default for it and
// the recorded values of the others.
func TestReplayWithoutReuseDelay(t *testing.T) {
	r, err := Open("testdata/sample.tcpt")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ev events.Event
	for r.Next(&ev) == nil {
	}
	if len(r.Header().Netns) == 0 {
		t.Fatal("no namespace records")
	}
	for _, n := range r.Header().Netns {
		if _, ok := n.Sysctls["tcp_tw_reuse_delay"]; ok {
			t.Fatalf("netns %d records tcp_tw_reuse_delay: not an old capture", n.Inode)
		}
		s := diagnosis.ParseSysctls(n.Sysctls)
		if s.ReuseDelay != diagnosis.DefaultReuseDelay || !s.Known || s.TwReuse != 1 || s.MaxTwBuckets != 131072 {
			t.Errorf("netns %d: %v read as %+v", n.Inode, n.Sysctls, s)
		}
	}
}

// TestUnreadableNetns: a namespace no path opens is recorded with every
// sysctl Unknown, and replays with the defaults.
func TestUnreadableNetns(t *testing.T) {
	n := lookupNetns("/nonexistent", 1, 2, 3)
	if n.Via != "" || len(n.Sysctls) != len(ledger.SysctlNames) {
		t.Fatalf("%+v", n)
	}
	for _, name := range ledger.SysctlNames {
		if n.Sysctls[name] != Unknown {
			t.Errorf("%s = %q, want %q", name, n.Sysctls[name], Unknown)
		}
	}
	if s := diagnosis.ParseSysctls(n.Sysctls); s != diagnosis.DefaultSysctls {
		t.Errorf("replayed as %+v, want the defaults", s)
	}
}

// TestVia names how a namespace was read.
func TestVia(t *testing.T) {
	for path, want := range map[string]string{
		"/proc/self/ns/net": "host",
		"/proc/42/ns/net":   "setns pid 42",
		"/run/netns/blue":   "setns /run/netns/blue",
	} {
		if got := via("/proc", path); got != want {
			t.Errorf("via(%q) = %q, want %q", path, got, want)
		}
	}
}
