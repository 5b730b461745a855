package diagnosis

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// inputs gathers the forecast's inputs for d at now and every timer: with
// timewait events from the table's sockets one by one (each at the end of
// the second its timer runs out in, an overdue one at 1 ns), else from the
// handovers of the last minute. The forecast is checked against predict of
// these.
func (e *Engine) inputs(d *destState, s Sysctls, now uint64) (Inputs, []time.Duration) {
	var exp []time.Duration
	in := Inputs{Sysctls: s, Loopback: d.dest.Loopback(), Rate: d.rate(&d.tw, now), InUse: d.open}
	nowSec := int64(now / 1e9)
	if e.twEvents {
		e.tw.socks.each(func(_ uint64, x *twSock) {
			if e.rowOf(x).d != d {
				return
			}
			v := time.Duration(1)
			if x.due >= nowSec {
				v = time.Duration(uint64(x.due+1)*1e9 - now)
			}
			exp = append(exp, v)
		})
		in.NetnsTW = d.ns.tw + d.ns.fw2
	} else {
		d.tw.advance(nowSec)
		for a := int64(0); a < int64(TimeWaitLen/time.Second); a++ {
			n := d.tw.counts[(nowSec-a+window)%window]
			if nowSec-a < 0 {
				continue
			}
			for range n {
				exp = append(exp, TimeWaitLen-time.Duration(a)*time.Second)
			}
		}
		in.NetnsTW = -1
	}
	in.Held = len(exp)
	if in.NetnsTW < 0 {
		in.NetnsTW = in.Held
	}
	return in, exp
}

// randomTable files n random timewait sockets toward d's destination
// through TimeWait: starts (TIME_WAIT or orphaned FIN_WAIT2) over the last
// 70 s, sockets found with any time left, moves and ends among them.
func randomTable(e *Engine, d *destState, n int, now uint64, next func(uint64) uint64, cookie *uint64) {
	var live []uint64
	for range n {
		*cookie++
		ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwStart, Cookie: *cookie, Netns: d.dest.Netns,
			Saddr: d.dest.Saddr, Daddr: d.dest.Daddr, Sport: uint16(32768 + next(28000)), Dport: d.dest.Dport,
			New: events.TimeWait, Time: now - next(70e9)}
		switch next(6) {
		case 0:
			ev.New = events.FinWait2
		case 1:
			ev.TwOp, ev.Time, ev.Remain = events.TwFound, now-next(5e9), uint32(next(60001))
			if next(20) == 0 {
				ev.Remain = uint32(next(1 << 30)) // a long FIN_WAIT2 timer
			}
		}
		e.TimeWait(&ev)
		live = append(live, ev.Cookie)
		if next(8) == 0 {
			c := live[next(uint64(len(live)))]
			step := events.Event{Kind: events.KindTimeWait, TwOp: events.TwMove, Cookie: c, Time: now - next(60e9),
				Old: events.FinWait2, New: events.TimeWait}
			if next(2) == 0 {
				step.TwOp, step.New = events.TwKill, events.Close
			}
			e.TimeWait(&step)
		}
	}
}

// TestForecastSameAsPredict checks forecast against predict of every timer,
// over random destinations: from the table or from handovers, loopback or
// not, with reuse or not, near and far from exhaustion.
func TestForecastSameAsPredict(t *testing.T) {
	next := xorshift()
	lo, far := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.9")
	kinds := map[[5]bool]int{}
	defer func() { t.Log(kinds) }()
	var cookie uint64
	for i := range 600 {
		e := New(Options{TimeWaitEvents: next(3) != 0})
		now := uint64(100e9 + next(10e9))
		k := Dest{Netns: 1, Saddr: lo, Daddr: lo, Dport: 80}
		if next(2) == 0 {
			k.Daddr = far
		}
		d := e.dest(k, now-next(30e9))
		s := DefaultSysctls
		s.PortLo, s.PortHi = 32768, 32768+int(next(30000))
		s.TwReuse, s.Timestamps = int(next(3)), int(next(2))
		s.ReuseDelay = time.Duration(next(3000)) * time.Millisecond
		if next(4) == 0 {
			s.MaxTwBuckets = int(next(60000))
		}
		rate := next(2000)
		if next(5) == 0 {
			rate = next(3)
		}
		for sec := now/1e9 - 70; sec <= now/1e9; sec++ {
			d.tw.add(int64(sec), uint32(next(rate+1)))
		}
		if e.twEvents {
			n := next(5000)
			if next(4) == 0 {
				n = next(300)
			}
			randomTable(e, d, int(n), now, next, &cookie)
			other := e.dest(Dest{Netns: 1, Saddr: lo, Daddr: far, Dport: 443}, now)
			randomTable(e, other, int(next(2000)), now, next, &cookie)
			d.open = int(next(5000))
		}
		if next(2) == 0 { // a range just above what is held: exhaustion within the timers
			in, _ := e.inputs(d, s, now)
			held := in.Held
			s.PortHi = min(s.PortLo+held+int(next(uint64(held/4+2))), 65535)
		}
		ref, exp := e.inputs(d, s, now)
		want := predict(ref, exp)
		in, got := e.forecast(d, s, now)
		kinds[[5]bool{e.twEvents, want.Never, want.Capped, want.Reuse, want.ETA > 0}]++
		if got != want || !reflect.DeepEqual(in, ref) {
			t.Fatalf("case %d: forecast %+v\ninputs %+v\nwant %+v\ninputs %+v", i, got, in, want, ref)
		}
	}
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
