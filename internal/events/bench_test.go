package events

import (
	"net/netip"
	"testing"
)

type nopSink struct{}

func (nopSink) Transition(*Transition) {}
func (nopSink) Finished(*Conn)         {}
func (nopSink) Loss(*Event)            {}

// finishedSink keeps a copy of every finished connection.
type finishedSink struct {
	nopSink
	conns []Conn
}

func (s *finishedSink) Finished(c *Conn) { s.conns = append(s.conns, c.Copy()) }

// benchEvents returns the decoded stream of conns loopback connections, 10
// transitions each (client and accepted server socket, client closes
// first), with inflight connections interleaved.
func benchEvents(conns, inflight int) []Event {
	type step struct {
		old, new State
		flags    Flags
		server   bool
	}
	seq := [10]step{
		{Close, SynSent, FlagTaskOwns, false},
		{Listen, SynRecv, FlagOwnerKnown | FlagOwnerListener, true},
		{SynSent, Established, FlagOwnerKnown, false},
		{SynRecv, Established, FlagOwnerKnown | FlagOwnerListener, true},
		{Established, FinWait1, FlagTaskOwns, false},
		{Established, CloseWait, FlagOwnerKnown | FlagOwnerListener | FlagFinRcvd, true},
		{FinWait1, FinWait2, FlagOwnerKnown, false},
		{CloseWait, LastAck, FlagTaskOwns | FlagFinRcvd, true},
		{FinWait2, Close, FlagOwnerKnown | FlagFinRcvd, false},
		{LastAck, Close, FlagOwnerKnown | FlagFinRcvd, true},
	}
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	out := make([]Event, 0, conns*len(seq))
	ts := uint64(1_000_000_000)
	for base := 0; base < conns; base += inflight {
		n := min(inflight, conns-base)
		for _, st := range seq {
			for i := range n {
				id := uint64(base + i)
				ev := Event{
					Kind: KindTransition, Time: ts, CgroupID: 4242, Netns: 4026531840,
					Family: 2, Saddr: lo, Daddr: lo, Old: st.old, New: st.new, Flags: st.flags,
					TaskComm: MakeComm("swapper/1"),
				}
				ts += 1500
				cport := uint16(32768 + id%28000)
				if st.server {
					ev.Cookie, ev.Inode = 2*id+1_000_001, 900_001+2*id
					ev.Sport, ev.Dport = 8080, cport
					ev.PID, ev.TID, ev.Comm = 2000, 2000, MakeComm("nginx")
				} else {
					ev.Cookie, ev.Inode = 2*id+1_000_000, 900_000+2*id
					ev.Sport, ev.Dport = cport, 8080
					if st.old == Close {
						ev.Sport = 0
					}
					ev.PID, ev.TID, ev.Comm = 1000, 1001, MakeComm("curl")
				}
				if st.flags&FlagTaskOwns != 0 {
					ev.TaskPID, ev.TaskTID, ev.TaskComm = ev.PID, ev.TID, ev.Comm
				}
				out = append(out, ev)
			}
		}
	}
	return out
}

// BenchmarkTrackerObserve measures Tracker.Observe alone (no decode, no-op
// sink). Observe stamps the owner on the event, so each iteration works on
// a copy, as the reader does with its reused Event.
func BenchmarkTrackerObserve(b *testing.B) {
	evs := benchEvents(4096, 64)
	tr := NewTracker(nopSink{}, nil, 0)
	var ev Event
	for i := range evs {
		ev = evs[i]
		tr.Observe(&ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev = evs[i%len(evs)]
		tr.Observe(&ev)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if st := tr.Stats(); st.Inferred != 0 {
		b.Fatalf("inferred %d transitions from a gap-free stream", st.Inferred)
	}
}

// TestBenchEvents checks the benchmark stream is gap-free and well formed.
func TestBenchEvents(t *testing.T) {
	var c finishedSink
	tr := NewTracker(&c, nil, 0)
	for _, ev := range benchEvents(100, 16) {
		tr.Observe(&ev)
	}
	st := tr.Stats()
	if st.Events != 1000 || st.Finished != 200 || st.Inferred != 0 || st.Tracked != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, cn := range c.conns {
		if cn.End != EndGraceful || cn.Closer == CloserNone {
			t.Fatalf("conn %+v", cn)
		}
	}
}
