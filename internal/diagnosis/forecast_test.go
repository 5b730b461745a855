package diagnosis

import (
	"testing"
	"time"
)

func sys(lo, hi, reuse, ts, maxTw int) Sysctls {
	return Sysctls{PortLo: lo, PortHi: hi, TwReuse: reuse, Timestamps: ts, MaxTwBuckets: maxTw,
		ReuseDelay: DefaultReuseDelay, Known: true}
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func TestPredict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Inputs
		exp   []time.Duration // the held sockets' timers (nil: spread evenly)
		never bool
		eta   time.Duration
		left  int
		reuse bool
	}{
		// 64 ports, 16 held (fresh), 10/s: (64-16)/10 = 4.8 s.
		{"reuse off", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 16, Rate: 10}, fill(16, 59*time.Second),
			false, secs(4.8), 48, false},
		// Already full: failing now.
		{"exhausted", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 64, Rate: 10}, nil, false, 0, 0, false},
		// 1/s holds at most 60 of 64 ports: never.
		{"steady below range", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 0, Rate: 1}, nil, true, 0, 64, false},
		// tw_reuse=1 with timestamps: a port is free again after 1 s; 10/s never fills 64.
		// (60 spread over 60 s: the newest, under 1 s old, still blocks its port.)
		{"reuse on", Inputs{Sysctls: sys(40000, 40063, 1, 1, 0), Held: 60, Rate: 10}, nil, true, 0, 63, true},
		// ... but 100/s does: 64 ports in 0.64 s (held ones older than 1 s are free).
		{"reuse on, faster than the delay", Inputs{Sysctls: sys(40000, 40063, 1, 1, 0), Held: 60, Rate: 100}, nil,
			false, secs(0.63), 63, true},
		// tw_reuse=1 without timestamps: no reuse.
		{"timestamps off", Inputs{Sysctls: sys(40000, 40063, 1, 0, 0), Held: 16, Rate: 10}, fill(16, 59*time.Second),
			false, secs(4.8), 48, false},
		// tw_reuse=2: loopback only.
		{"reuse loopback, remote dest", Inputs{Sysctls: sys(40000, 40063, 2, 1, 0), Held: 16, Rate: 10}, fill(16, 59*time.Second),
			false, secs(4.8), 48, false},
		{"reuse loopback, loopback dest", Inputs{Sysctls: sys(40000, 40063, 2, 1, 0), Loopback: true, Held: 16, Rate: 10}, nil,
			true, 0, 63, true},
		// Other sockets toward the destination take ports: (64-24-16)/10.
		{"in use", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 16, InUse: 24, Rate: 10}, fill(16, 59*time.Second),
			false, secs(2.4), 24, false},
		// The held ones expire (at 0.2 s, 56+2 < 64) before the new ones
		// fill the range: then 0 + 10/s → 6.4 s.
		{"held expire first", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 56, Rate: 10}, fill(56, secs(0.2)),
			false, secs(6.4), 8, false},
		// They would expire at 1 s, but 60 + 10/s fills 64 at 0.4 s.
		{"held expire too late", Inputs{Sysctls: sys(40000, 40063, 0, 1, 0), Held: 60, Rate: 10}, fill(60, time.Second),
			false, secs(0.4), 4, false},
		// tcp_max_tw_buckets 50 < 64 ports: the kernel stops making TIME_WAIT first.
		{"max tw buckets", Inputs{Sysctls: sys(40000, 40063, 0, 1, 50), Held: 16, Rate: 10, NetnsTW: 16}, nil, true, 0, 48, false},
		// Several destinations share the namespace's cap: 40 elsewhere leave 90-40 = 50 < 64.
		{"max tw buckets shared", Inputs{Sysctls: sys(40000, 40063, 0, 1, 90), Held: 16, Rate: 10, NetnsTW: 56}, nil, true, 0, 48, false},
		// ... while with 20 elsewhere, 70 ≥ 64: the range can run out.
		{"max tw buckets roomy", Inputs{Sysctls: sys(40000, 40063, 0, 1, 90), Held: 16, Rate: 10, NetnsTW: 36}, fill(16, 59*time.Second),
			false, secs(4.8), 48, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := predict(tc.in, tc.exp)
			if f.Never != tc.never || (!tc.never && absDiff(f.ETA, tc.eta) > time.Millisecond) || f.Left != tc.left || f.Reuse != tc.reuse {
				t.Errorf("got never=%v eta=%v left=%d reuse=%v; want never=%v eta=%v left=%d reuse=%v (%+v)",
					f.Never, f.ETA, f.Left, f.Reuse, tc.never, tc.eta, tc.left, tc.reuse, f)
			}
		})
	}
}

// TestSharedRange: destinations share the range's size but not its ports
// (connect() picks a port per 4-tuple), so each is forecast on its own pile.
func TestSharedRange(t *testing.T) {
	s := sys(40000, 40063, 0, 1, 0)
	a := predict(Inputs{Sysctls: s, Held: 60, Rate: 10}, fill(60, 59*time.Second))
	b := predict(Inputs{Sysctls: s, Held: 4, Rate: 10}, fill(4, 59*time.Second))
	if a.ETA != secs(0.4) || b.ETA != secs(6) || a.Ports != 64 || b.Ports != 64 {
		t.Errorf("a %+v, b %+v", a, b)
	}
}

func TestParseSysctls(t *testing.T) {
	s := ParseSysctls(map[string]string{"ip_local_port_range": "40000 40063", "tcp_tw_reuse": "0",
		"tcp_timestamps": "1", "tcp_max_tw_buckets": "262144", "tcp_tw_reuse_delay": "2000", "tcp_fin_timeout": "30"})
	if s.PortLo != 40000 || s.PortHi != 40063 || s.TwReuse != 0 || s.MaxTwBuckets != 262144 || s.ReuseDelay != 2*time.Second ||
		s.FinTimeout != 30*time.Second || !s.Known {
		t.Errorf("%+v", s)
	}
	if d := ParseSysctls(map[string]string{"ip_local_port_range": "unknown", "tcp_tw_reuse": "x"}); d.Known || d != DefaultSysctls {
		t.Errorf("bad values: %+v", d)
	}
}

// TestParseSysctlsFields checks the port range's parsing without strings.Fields.
func TestParseSysctlsFields(t *testing.T) {
	for in, ok := range map[string]bool{"1024 65000": true, " 1024\t65000\n": true, "1024": false, "1 2 3": false, "": false} {
		s := ParseSysctls(map[string]string{"ip_local_port_range": in})
		if s.Known != ok || ok && (s.PortLo != 1024 || s.PortHi != 65000) {
			t.Errorf("%q: %+v", in, s)
		}
	}
}

func TestHist(t *testing.T) {
	var h Hist
	for i := 1; i <= 100; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	p := h.Percentiles()
	if p.Count != 100 || p.Max != 100*time.Millisecond || absDiff(p.P50, 50*time.Millisecond) > 10*time.Millisecond ||
		absDiff(p.P99, 99*time.Millisecond) > 20*time.Millisecond {
		t.Errorf("%+v", p)
	}
}

func fill(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}
