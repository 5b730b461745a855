package probe

import (
	"testing"
	"unsafe"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// nopSink discards everything the tracker reports.
type nopSink struct{}

func (nopSink) Transition(*events.Transition) {}
func (nopSink) Finished(*events.Conn)         {}
func (nopSink) Loss(*events.Event)            {}

// benchRecords returns raw ring records, as the kernel writes them, of conns
// loopback connections: each one a client socket (CLOSE→SYN_SENT→
// ESTABLISHED→FIN_WAIT1→FIN_WAIT2→CLOSE) and its accepted server socket
// (LISTEN→SYN_RECV→ESTABLISHED→CLOSE_WAIT→LAST_ACK→CLOSE): 10 transitions
// per connection. inflight connections are interleaved, as concurrent
// connections are in a real ring, so the tracker's table holds about
// 2*inflight sockets.
func benchRecords(conns, inflight int) [][]byte {
	type step struct {
		old, new, flags uint8
		server          bool
	}
	// Flags as the kernel sets them: syscall-made transitions carry
	// EVENT_TASK_OWNS, softirq ones take the owner map (EVENT_OWNER_KNOWN),
	// the accepted child inherits the listener's owner.
	const owns, known, listener, fin = 1, 2, 4, 8
	seq := [10]step{
		{7, 2, owns, false},                  // connect: CLOSE→SYN_SENT
		{10, 3, known | listener, true},      // SYN: LISTEN→SYN_RECV (softirq)
		{2, 1, known, false},                 // SYN-ACK: SYN_SENT→ESTABLISHED
		{3, 1, known | listener, true},       // ACK: SYN_RECV→ESTABLISHED
		{1, 4, owns, false},                  // close: ESTABLISHED→FIN_WAIT1
		{1, 8, known | listener | fin, true}, // FIN: ESTABLISHED→CLOSE_WAIT
		{4, 5, known, false},                 // ACK: FIN_WAIT1→FIN_WAIT2
		{8, 9, owns | fin, true},             // close: CLOSE_WAIT→LAST_ACK
		{5, 7, known | fin, false},           // FIN: FIN_WAIT2→CLOSE (TIME_WAIT)
		{9, 7, known | fin, true},            // ACK: LAST_ACK→CLOSE
	}
	comm := func(s string) (c [16]int8) {
		for i := 0; i < len(s) && i < 15; i++ {
			c[i] = int8(s[i])
		}
		return c
	}
	clientComm, serverComm := comm("curl"), comm("nginx")
	out := make([][]byte, 0, conns*len(seq))
	ts := uint64(1_000_000_000)
	for base := 0; base < conns; base += inflight {
		n := min(inflight, conns-base)
		for s := range seq {
			for i := range n {
				id := uint64(base + i)
				st := seq[s]
				var rec tcptraceRecord
				r := &rec.E
				*r = tcptraceEvent{
					TsNs:     ts,
					CgroupId: 4242,
					Netns:    4026531840,
					Family:   afInet,
					Oldstate: st.old,
					Newstate: st.new,
					Flags:    st.flags | flagComm,
				}
				ts += 1500
				r.Saddr[0], r.Saddr[3] = 127, 1
				r.Daddr[0], r.Daddr[3] = 127, 1
				cport := uint16(32768 + id%28000)
				if st.server {
					r.Cookie = 2*id + 1_000_001
					r.Ino = 900_000 + 2*id + 1
					r.Sport, r.Dport = 8080, cport
					r.Pid, r.Tid, rec.Comm = 2000, 2000, serverComm
				} else {
					r.Cookie = 2*id + 1_000_000
					r.Ino = 900_000 + 2*id
					r.Sport, r.Dport = cport, 8080
					if st.old == 7 { // port not bound yet at connect
						r.Sport = 0
					}
					r.Pid, r.Tid, rec.Comm = 1000, 1001, clientComm
				}
				raw := make([]byte, commSize)
				copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&rec)), commSize))
				out = append(out, raw)
			}
		}
	}
	return out
}

// BenchmarkDecode measures Decode alone over realistic records.
func BenchmarkDecode(b *testing.B) {
	recs := benchRecords(4096, 64)
	var ev events.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Decode(recs[i%len(recs)], &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeTrack measures Decode followed by Tracker.Observe with a
// no-op sink: the tracer's userspace cost per event before rendering.
func BenchmarkDecodeTrack(b *testing.B) {
	recs := benchRecords(4096, 64)
	tr := events.NewTracker(nopSink{}, nil, 0)
	var ev events.Event
	// Warm the tracker's free list and map so the loop measures steady state.
	for _, r := range recs {
		_ = Decode(r, &ev)
		tr.Observe(&ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Decode(recs[i%len(recs)], &ev); err != nil {
			b.Fatal(err)
		}
		tr.Observe(&ev)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if st := tr.Stats(); st.Inferred != 0 {
		b.Fatalf("tracker inferred %d transitions from a gap-free stream: records are malformed", st.Inferred)
	}
}

// TestBenchRecords checks the benchmark's synthetic stream is what the tracker
// expects of a real one: gap-free, every connection finished with the right
// verdicts.
func TestBenchRecords(t *testing.T) {
	recs := benchRecords(100, 16)
	var c eventstest.Collector
	tr := events.NewTracker(&c, nil, 0)
	var ev events.Event
	for _, r := range recs {
		if err := Decode(r, &ev); err != nil {
			t.Fatal(err)
		}
		tr.Observe(&ev)
	}
	st := tr.Stats()
	if st.Events != 1000 || st.Conns != 200 || st.Finished != 200 || st.Inferred != 0 || st.Tracked != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, cn := range c.Conns {
		want := events.CloserLocal
		if cn.Role == events.RoleServer {
			want = events.CloserPeer
		}
		if cn.End != events.EndGraceful || cn.Closer != want || !cn.Owner.Known() {
			t.Fatalf("conn %+v", cn)
		}
	}
}
