package diagnosis

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// TestJoinSameAsPlain feeds two engines the same churn and snapshots, one
// joining them looking every socket up, and compares what they make of
// them: the ends reported (in order), the counts per peer and owner, the
// expiries, the traced sockets kept. The churn fills the cookie table
// past its bound, finishes some sockets twice, and the snapshots (in a
// stable hash order) lose runs of sockets, repeat some and swap some.
func TestJoinSameAsPlain(t *testing.T) {
	var outA, outB ends
	a, b := New(Options{Out: &outA}), New(Options{Out: &outB})
	b.plain = true
	next := xorshift()
	var gen cookieGen
	lo, far := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.2")
	kern := [2][]ledger.TimeWait{} // per namespace, in hash order
	var used []uint64
	now := uint64(100e9)
	for step := range 60 {
		for range 4000 {
			now += 50e3
			ns, cookie, again := int(next(2)), gen.task(int(next(2))), false
			if next(1000) < 2 && len(used) > 0 && step%3 == 0 {
				cookie, again = used[len(used)-1-int(next(uint64(min(len(used), 150000))))], true
			}
			c := &events.Conn{Cookie: cookie, Owner: events.Owner{PID: uint32(100 + next(3))}, Role: events.RoleClient,
				Netns: uint32(ns + 1), Saddr: lo, Daddr: lo, Sport: uint16(32768 + next(28000)), Dport: 80,
				Start: now - 1e5, Last: now, End: events.EndGraceful, TimeWait: true}
			if next(2) == 0 {
				c.Daddr = far
			}
			if next(10) != 0 {
				a.Finished(c)
				b.Finished(c)
				used = append(used, cookie)
			}
			if !again && next(20) != 0 {
				peer := uint32(0)
				if c.Daddr == far {
					peer = 1
				}
				kern[ns] = append(kern[ns], ledger.TimeWait{Cookie: cookie, Peer: peer, Expires: uint32(now / 1e6)})
			}
		}
		for ns := range kern {
			l := kern[ns][:0]
			for _, k := range kern[ns] {
				if uint64(k.Expires)+60000 > now/1e6 && next(300) != 0 {
					l = append(l, k)
				}
			}
			if next(3) == 0 && len(l) > 200 { // a run of sockets gone at once
				at := int(next(uint64(len(l) - 100)))
				l = append(l[:at], l[at+20+int(next(80)):]...)
			}
			kern[ns] = l
			slices.SortStableFunc(l, func(x, y ledger.TimeWait) int { // hash order
				return int(x.Cookie*0x9e3779b97f4a7c15>>52) - int(y.Cookie*0x9e3779b97f4a7c15>>52)
			})
			s := &ledger.Snapshot{Netns: uint32(ns + 1), Time: now, Peers: []ledger.Peer{
				{Saddr: lo, Daddr: lo, Dport: 80}, {Saddr: lo, Daddr: far, Dport: 80}}}
			for i, k := range l {
				k.Expires = uint32(uint64(k.Expires) + 60000 - now/1e6)
				s.TimeWait = append(s.TimeWait, k)
				if next(200) == 0 {
					s.TimeWait = append(s.TimeWait, k) // dumped twice
				}
				if next(200) == 0 && i > 0 {
					n := len(s.TimeWait)
					s.TimeWait[n-1], s.TimeWait[n-2] = s.TimeWait[n-2], s.TimeWait[n-1]
				}
			}
			for _, k := range s.TimeWait {
				s.Peers[k.Peer].TimeWait++
			}
			s2 := *s
			s2.TimeWait = slices.Clone(s.TimeWait)
			a.Ledger(s)
			b.Ledger(&s2)
			if err := sameJoin(a, b, uint32(ns+1), &outA, &outB); err != nil {
				t.Fatalf("step %d, namespace %d: %v", step, ns+1, err)
			}
		}
	}
	if a.stats.twEnded == 0 || a.cookies.evicted == 0 || a.cookies.rewrites == 0 {
		t.Errorf("%d ends, %d evicted, %d rewrites: the churn missed a case", a.stats.twEnded, a.cookies.evicted, a.cookies.rewrites)
	}
}

// sameJoin compares what engines a and b made of their latest snapshots of netns.
func sameJoin(a, b *Engine, netns uint32, outA, outB *ends) error {
	if !slices.Equal(outA.got, outB.got) {
		return fmt.Errorf("ends %d, want %d", len(outA.got), len(outB.got))
	}
	va, vb := a.netns[netns], b.netns[netns]
	if va.unknown != vb.unknown || va.total != vb.total || !slices.Equal(va.byOwner, vb.byOwner) {
		return fmt.Errorf("unknown %d total %d rows %v, want %d %d %v", va.unknown, va.total, va.byOwner, vb.unknown, vb.total, vb.byOwner)
	}
	if !slices.Equal(va.seen, vb.seen) {
		return fmt.Errorf("%d traced sockets kept, want %d", len(va.seen), len(vb.seen))
	}
	for k, d := range a.dests {
		if !slices.Equal(d.ledger.expiries, b.dests[k].ledger.expiries) {
			return fmt.Errorf("expiries of %v differ", k)
		}
	}
	return nil
}
