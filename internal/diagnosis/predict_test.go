package diagnosis

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// inputs gathers the forecast's inputs for d at now, every timer in
// Expiries, as the engine did before forecast: the reference forecast is
// checked against.
func (e *Engine) inputs(d *destState, s Sysctls, now uint64) Inputs {
	in := Inputs{Sysctls: s, Loopback: d.dest.Loopback(), Rate: d.rate(&d.tw, now)}
	l := &d.ledger
	if l.at != 0 && now >= l.at && now-l.at < uint64(staleLedger) {
		age := time.Duration(now - l.at)
		for _, ms := range l.expiries {
			if x := time.Duration(ms) * time.Millisecond; x > age {
				in.Expiries = append(in.Expiries, x-age)
			}
		}
		for range l.traced {
			in.Expiries = append(in.Expiries, TimeWaitLen-age)
		}
		in.InUse, in.NetnsTW = l.inUse, l.netnsTW+int(l.traced)
	} else {
		nowSec := int64(now / 1e9)
		d.tw.advance(nowSec)
		for a := int64(0); a < int64(TimeWaitLen/time.Second); a++ {
			n := d.tw.counts[(nowSec-a+window)%window]
			if nowSec-a < 0 {
				continue
			}
			for range n {
				in.Expiries = append(in.Expiries, TimeWaitLen-time.Duration(a)*time.Second)
			}
		}
		in.NetnsTW = -1
	}
	in.Held = len(in.Expiries)
	if in.NetnsTW < 0 {
		in.NetnsTW = in.Held
	}
	return in
}

// TestForecastSameAsPredict checks forecast against Predict of every timer,
// over random destinations: with and without a fresh snapshot, loopback or
// not, with reuse or not, near and far from exhaustion.
func TestForecastSameAsPredict(t *testing.T) {
	next := xorshift()
	lo, far := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.9")
	e := New(Options{})
	kinds := map[[4]bool]int{}
	defer func() { t.Log(kinds) }()
	for i := range 2000 {
		d := &destState{dest: Dest{Netns: 1, Saddr: lo, Daddr: lo, Dport: 80}}
		if next(2) == 0 {
			d.dest.Daddr = far
		}
		s := DefaultSysctls
		s.PortLo, s.PortHi = 32768, 32768+int(next(30000))
		s.TwReuse, s.Timestamps = int(next(3)), int(next(2))
		s.ReuseDelay = time.Duration(next(3000)) * time.Millisecond
		if next(4) == 0 {
			s.MaxTwBuckets = int(next(60000))
		}
		now := uint64(100e9 + next(10e9))
		d.first = now - next(30e9)
		rate := next(2000)
		if next(5) == 0 {
			rate = next(3)
		}
		for sec := now/1e9 - 70; sec <= now/1e9; sec++ {
			d.tw.add(int64(sec), uint32(next(rate+1)))
		}
		if next(3) != 0 {
			l := &d.ledger
			l.at = now - next(6e9)
			n := next(40000)
			if next(4) == 0 {
				n = next(600)
			}
			for range n {
				ms := uint32(next(60001))
				if next(50) == 0 {
					ms = uint32(next(1 << 30)) // a long FIN_WAIT2 timer
				}
				l.expiries = append(l.expiries, ms)
			}
			if next(3) == 0 && n > 0 {
				l.expiries = append(l.expiries, l.expiries[:n/2]...) // duplicates
			}
			l.traced, l.inUse, l.netnsTW = uint32(next(3000)), int(next(5000)), int(n+next(100000))
		}
		if next(2) == 0 { // a range just above what is held: exhaustion within the timers
			held := e.inputs(d, s, now).Held
			s.PortHi = min(s.PortLo+held+int(next(uint64(held/4+2))), 65535)
		}
		d2 := *d
		d2.ledger.expiries = append([]uint32(nil), d.ledger.expiries...)
		want := Predict(e.inputs(&d2, s, now))
		in, got := e.forecast(d, s, now)
		ref := e.inputs(&d2, s, now)
		ref.Expiries = nil
		kinds[[4]bool{want.Never, want.Capped, want.Reuse, want.ETA > 0}]++
		if got != want || !reflect.DeepEqual(in, ref) {
			t.Fatalf("case %d: forecast %+v\ninputs %+v\nwant %+v\ninputs %+v", i, got, in, want, ref)
		}
	}
}

// BenchmarkSortTimers sorts the timers of a snapshot of 28k TIME_WAIT sockets.
func BenchmarkSortTimers(b *testing.B) {
	src := make([]uint32, 28000)
	rnd := uint64(88172645463325252)
	for i := range src {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		src[i] = uint32(rnd % 60001)
	}
	a := make([]uint32, len(src))
	var buf []uint32
	b.ResetTimer()
	for range b.N {
		copy(a, src)
		sortTimers(a, &buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/timer")
}

// xorshift returns a reproducible pseudo-random source: next(n) is in [0, n).
func xorshift() func(n uint64) uint64 {
	rnd := uint64(88172645463325252)
	return func(n uint64) uint64 {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return rnd % n
	}
}
