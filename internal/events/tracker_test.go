package events_test

// Tracker tests fed with kernel sequences recorded by
// internal/probe TestRecordFixtures (testdata/<shape>.jsonl: the raw decoded
// events of one connection shape, port-filtered, in ring order).

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

func tkLoad(t *testing.T, name string) []events.Event {
	t.Helper()
	evs, err := eventstest.LoadJSONL(filepath.Join("testdata", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		t.Fatalf("%s: empty fixture", name)
	}
	return evs
}

// tkSockets names a fixture's sockets by how they began: client
// (CLOSE>SYN_SENT), server (LISTEN>SYN_RECV), listener (CLOSE>LISTEN), in
// order of first appearance.
type tkSockets struct {
	clients, servers, listeners []uint64
}

func tkRoles(evs []events.Event) tkSockets {
	var s tkSockets
	for i := range evs {
		e := &evs[i]
		switch {
		case e.Old == events.Close && e.New == events.SynSent:
			s.clients = append(s.clients, e.Cookie)
		case e.Old == events.Listen && e.New == events.SynRecv:
			s.servers = append(s.servers, e.Cookie)
		case e.Old == events.Close && e.New == events.Listen:
			s.listeners = append(s.listeners, e.Cookie)
		}
	}
	return s
}

// tkRun feeds copies of evs to a fresh tracker bounded to max.
func tkRun(evs []events.Event, max int) (*eventstest.Collector, *events.Tracker) {
	col := &eventstest.Collector{}
	tr := events.NewTracker(col, nil, max)
	for i := range evs {
		ev := evs[i]
		tr.Observe(&ev)
	}
	return col, tr
}

// tkSeq returns a socket's transitions as "Old>Shown", inferred ones marked
// with a leading '+', and how many were inferred.
func tkSeq(col *eventstest.Collector, cookie uint64) ([]string, int) {
	var seq []string
	n := 0
	for i := range col.Transitions {
		x := &col.Transitions[i]
		if x.Conn.Cookie != cookie {
			continue
		}
		s := x.Old.String() + ">" + x.Shown().String()
		if x.Inferred {
			s = "+" + s
			n++
		}
		seq = append(seq, s)
	}
	return seq, n
}

// tkConns returns the finished connections of a cookie, in order.
func tkConns(col *eventstest.Collector, cookie uint64) []events.Conn {
	var out []events.Conn
	for _, c := range col.Conns {
		if c.Cookie == cookie {
			out = append(out, c)
		}
	}
	return out
}

func tkConn(t *testing.T, col *eventstest.Collector, cookie uint64, what string) *events.Conn {
	t.Helper()
	cs := tkConns(col, cookie)
	if len(cs) != 1 {
		t.Fatalf("%s (cookie %d): finished %d times, want once", what, cookie, len(cs))
	}
	return &cs[0]
}

// tkVerdict is the expected life of one socket.
type tkVerdict struct {
	seq      string // "Old>Shown ..." ('+' marks inferred)
	role     events.Role
	closer   events.Closer
	end      events.End
	resetBy  events.Side
	timeWait bool
	partial  bool
}

func tkCheck(t *testing.T, col *eventstest.Collector, cookie uint64, what string, w tkVerdict) *events.Conn {
	t.Helper()
	seq, inferred := tkSeq(col, cookie)
	if got := strings.Join(seq, " "); got != w.seq {
		t.Errorf("%s: transitions\n got %s\nwant %s", what, got, w.seq)
	}
	c := tkConn(t, col, cookie, what)
	if c.Role != w.role || c.Closer != w.closer || c.End != w.end || c.ResetBy != w.resetBy || c.TimeWait != w.timeWait || c.Partial != w.partial {
		t.Errorf("%s: role=%v closer=%v end=%v reset_by=%q timewait=%v partial=%v, want role=%v closer=%v end=%v reset_by=%q timewait=%v partial=%v",
			what, c.Role, c.Closer, c.End, c.ResetBy, c.TimeWait, c.Partial,
			w.role, w.closer, w.end, w.resetBy, w.timeWait, w.partial)
	}
	if c.Inferred != inferred {
		t.Errorf("%s: Conn.Inferred = %d, %d transitions marked inferred", what, c.Inferred, inferred)
	}
	return c
}

const (
	tkActiveClient  = "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT"
	tkPassiveClient = "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE"
	tkActiveServer  = "LISTEN>SYN_RECV SYN_RECV>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT"
	tkPassiveServer = "LISTEN>SYN_RECV SYN_RECV>ESTABLISHED ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE"
)

var (
	tkWantActiveClient  = tkVerdict{tkActiveClient, events.RoleClient, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}
	tkWantPassiveClient = tkVerdict{tkPassiveClient, events.RoleClient, events.CloserPeer, events.EndGraceful, events.SideNone, false, false}
	tkWantActiveServer  = tkVerdict{tkActiveServer, events.RoleServer, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}
	tkWantPassiveServer = tkVerdict{tkPassiveServer, events.RoleServer, events.CloserPeer, events.EndGraceful, events.SideNone, false, false}
	tkWantListener      = tkVerdict{"CLOSE>LISTEN LISTEN>CLOSE", events.RoleListener, events.CloserNone, events.EndClosed, events.SideNone, false, false}
)

// tkShapes are the expected client and server lives per fixture.
var tkShapes = map[string][2]tkVerdict{
	"client_close": {tkWantActiveClient, tkWantPassiveServer},
	"half_close":   {tkWantActiveClient, tkWantPassiveServer},
	"ipv6":         {tkWantActiveClient, tkWantPassiveServer},
	"server_close": {tkWantPassiveClient, tkWantActiveServer},
	"churn":        {tkWantPassiveClient, tkWantActiveServer},
	"linger_reset": {
		{"CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>CLOSE", events.RoleClient, events.CloserNone, events.EndReset, events.SideLocal, false, false},
		{"LISTEN>SYN_RECV SYN_RECV>ESTABLISHED ESTABLISHED>CLOSE", events.RoleServer, events.CloserNone, events.EndReset, events.SidePeer, false, false},
	},
	"refused": {
		{"CLOSE>SYN_SENT SYN_SENT>CLOSE", events.RoleClient, events.CloserNone, events.EndRefused, events.SidePeer, false, false},
	},
}

func TestTrackerFixtures(t *testing.T) {
	for _, name := range []string{"client_close", "server_close", "linger_reset", "refused", "half_close", "ipv6", "churn"} {
		t.Run(name, func(t *testing.T) {
			evs := tkLoad(t, name)
			s := tkRoles(evs)
			want := tkShapes[name]
			nconn := 1
			if name == "churn" {
				nconn = 50
			}
			nserver, nlistener := nconn, 1
			if name == "refused" {
				nserver, nlistener = 0, 0
			}
			if len(s.clients) != nconn || len(s.servers) != nserver || len(s.listeners) != nlistener {
				t.Fatalf("fixture has %d clients, %d servers, %d listeners", len(s.clients), len(s.servers), len(s.listeners))
			}
			col, tr := tkRun(evs, 0)
			st := tr.Stats()
			nsock := nconn + nserver + nlistener
			wantStats := events.Stats{Events: uint64(len(evs)), Conns: uint64(nsock), Finished: uint64(nsock)}
			if st != wantStats {
				t.Errorf("stats %+v, want %+v", st, wantStats)
			}
			if len(col.Transitions) != len(evs) || len(col.Conns) != nsock || len(col.Losses) != 0 {
				t.Errorf("sink got %d transitions, %d conns, %d losses", len(col.Transitions), len(col.Conns), len(col.Losses))
			}
			// The client is the recording test process; every server
			// socket belongs to the listener's (helper) process.
			clientPID := evs[slices.IndexFunc(evs, func(e events.Event) bool { return e.Cookie == s.clients[0] })].PID
			var serverPID uint32
			for _, l := range s.listeners {
				c := tkCheck(t, col, l, "listener", tkWantListener)
				serverPID = c.Owner.PID
				if c.Owner.Source != events.OwnerSyscall {
					t.Errorf("listener owner %+v", c.Owner)
				}
			}
			if nlistener > 0 && serverPID == clientPID {
				t.Errorf("server and client both pid %d", clientPID)
			}
			for _, ck := range s.clients {
				c := tkCheck(t, col, ck, "client", want[0])
				if c.Owner.PID != clientPID || c.Owner.Source != events.OwnerSyscall {
					t.Errorf("client owner %+v, want pid %d from syscalls", c.Owner, clientPID)
				}
			}
			for _, ck := range s.servers {
				c := tkCheck(t, col, ck, "server", want[1])
				// An accepted child is attributed to its listener's
				// owner until a syscall of its own.
				src := events.OwnerSyscall
				if name == "linger_reset" {
					src = events.OwnerListener // reset before any syscall on it
				}
				if c.Owner.PID != serverPID || c.Owner.Source != src {
					t.Errorf("server owner %+v, want pid %d source %v", c.Owner, serverPID, src)
				}
			}
			// Every transition shows its socket's owner, never the
			// interrupted task.
			for i := range col.Transitions {
				x := &col.Transitions[i]
				if x.Event.PID != x.Conn.Owner.PID && x.Conn.Owner.Source == events.OwnerSyscall {
					t.Errorf("%d %v>%v: event pid %d, conn owner %d", x.Conn.Cookie, x.Old, x.New, x.Event.PID, x.Conn.Owner.PID)
				}
			}
		})
	}
}

// tkWithout returns evs without the transitions of cookie matching old>new.
func tkWithout(evs []events.Event, cookie uint64, old, new events.State) []events.Event {
	out := make([]events.Event, 0, len(evs))
	for _, e := range evs {
		if e.Cookie == cookie && e.Old == old && e.New == new {
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestTrackerGapRepair deletes kernel events from recorded sequences (as
// the recursion guard or ring loss would): the tracker must emit inferred
// steps, count them, and keep the verdicts.
func TestTrackerGapRepair(t *testing.T) {
	evs := tkLoad(t, "client_close")
	s := tkRoles(evs)
	client, server := s.clients[0], s.servers[0]
	cases := []struct {
		name     string
		cookie   uint64
		old, new events.State
		want     tkVerdict
	}{
		{"client FIN_WAIT1>FIN_WAIT2", client, events.FinWait1, events.FinWait2, tkVerdict{
			"CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 +FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleClient, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}},
		{"client ESTABLISHED>FIN_WAIT1", client, events.Established, events.FinWait1, tkVerdict{
			"CLOSE>SYN_SENT SYN_SENT>ESTABLISHED +ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleClient, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}},
		{"client SYN_SENT>ESTABLISHED", client, events.SynSent, events.Established, tkVerdict{
			"CLOSE>SYN_SENT +SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleClient, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}},
		{"server ESTABLISHED>CLOSE_WAIT", server, events.Established, events.CloseWait, tkVerdict{
			"LISTEN>SYN_RECV SYN_RECV>ESTABLISHED +ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE",
			events.RoleServer, events.CloserPeer, events.EndGraceful, events.SideNone, false, false}},
		{"server CLOSE_WAIT>LAST_ACK", server, events.CloseWait, events.LastAck, tkVerdict{
			"LISTEN>SYN_RECV SYN_RECV>ESTABLISHED ESTABLISHED>CLOSE_WAIT +CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE",
			events.RoleServer, events.CloserPeer, events.EndGraceful, events.SideNone, false, false}},
		// A lost handshake start: the tracker knows how a client and an
		// accepted child begin.
		{"client CLOSE>SYN_SENT", client, events.Close, events.SynSent, tkVerdict{
			"+CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleClient, events.CloserLocal, events.EndGraceful, events.SideNone, true, false}},
		{"server LISTEN>SYN_RECV", server, events.Listen, events.SynRecv, tkVerdict{
			"+LISTEN>SYN_RECV SYN_RECV>ESTABLISHED ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE",
			events.RoleServer, events.CloserPeer, events.EndGraceful, events.SideNone, false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tkWithout(evs, tc.cookie, tc.old, tc.new)
			if len(in) != len(evs)-1 {
				t.Fatalf("fixture lacks %v>%v", tc.old, tc.new)
			}
			col, tr := tkRun(in, 0)
			if st := tr.Stats(); st.Inferred != 1 || st.Finished != 3 || st.Tracked != 0 || st.Events != uint64(len(in)) {
				t.Errorf("stats %+v, want 1 inferred, 3 finished", st)
			}
			tkCheck(t, col, tc.cookie, tc.name, tc.want)
			for i := range col.Transitions {
				x := &col.Transitions[i]
				if x.Inferred && (x.Old != tc.old || x.New != tc.new || x.Event == nil || x.Event.Cookie != tc.cookie) {
					t.Errorf("inferred %v>%v of %d", x.Old, x.New, x.Conn.Cookie)
				}
			}
			// The other sockets are untouched.
			other, w := server, tkWantPassiveServer
			if tc.cookie == server {
				other, w = client, tkWantActiveClient
			}
			tkCheck(t, col, other, "other socket", w)
		})
	}

	// Two steps lost in a row: both filled from one revealing event.
	t.Run("client FIN_WAIT1 and FIN_WAIT2", func(t *testing.T) {
		in := tkWithout(tkWithout(evs, client, events.Established, events.FinWait1), client, events.FinWait1, events.FinWait2)
		col, tr := tkRun(in, 0)
		// Today the tracker fills the gap with one step from the state it
		// knew to the state the event left (ESTABLISHED>FIN_WAIT2).
		seq, n := tkSeq(col, client)
		t.Logf("repaired: %v (%d inferred)", seq, n)
		c := tkConn(t, col, client, "client")
		if c.End != events.EndGraceful || !c.TimeWait || c.Inferred != n || uint64(n) != tr.Stats().Inferred {
			t.Errorf("client end=%v timewait=%v inferred=%d", c.End, c.TimeWait, c.Inferred)
		}
		if c.Closer != events.CloserLocal {
			t.Errorf("client closer = %v after the gap ESTABLISHED>FIN_WAIT2, want local", c.Closer)
		}
	})
	t.Run("server CLOSE_WAIT and LAST_ACK", func(t *testing.T) {
		in := tkWithout(tkWithout(evs, server, events.Established, events.CloseWait), server, events.CloseWait, events.LastAck)
		col, tr := tkRun(in, 0)
		seq, n := tkSeq(col, server)
		t.Logf("repaired: %v (%d inferred)", seq, n)
		c := tkConn(t, col, server, "server")
		if c.End != events.EndGraceful || c.TimeWait || c.Inferred != n || n == 0 || uint64(n) != tr.Stats().Inferred {
			t.Errorf("server end=%v timewait=%v inferred=%d", c.End, c.TimeWait, c.Inferred)
		}
		if c.Closer != events.CloserPeer {
			t.Errorf("server closer = %v after the gap ESTABLISHED>LAST_ACK, want peer", c.Closer)
		}
	})
}

// TestTrackerPartial drops the start of recorded connections, as when
// tracing begins mid-connection.
func TestTrackerPartial(t *testing.T) {
	evs := tkLoad(t, "client_close")
	s := tkRoles(evs)
	client, server, listener := s.clients[0], s.servers[0], s.listeners[0]

	// dropFirst removes the first n events of cookie.
	dropFirst := func(evs []events.Event, cookie uint64, n int) []events.Event {
		var out []events.Event
		for _, e := range evs {
			if e.Cookie == cookie && n > 0 {
				n--
				continue
			}
			out = append(out, e)
		}
		return out
	}

	t.Run("client from ESTABLISHED", func(t *testing.T) {
		col, tr := tkRun(dropFirst(evs, client, 2), 0)
		c := tkCheck(t, col, client, "client", tkVerdict{
			"ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleUnknown, events.CloserLocal, events.EndGraceful, events.SideNone, true, true})
		if tr.Stats().Inferred != 0 {
			t.Errorf("inferred %d", tr.Stats().Inferred)
		}
		if first := tkFirst(col, client); first.InOld != -1 {
			t.Errorf("first transition InOld = %d, want -1 (unknown)", first.InOld)
		}
		if c.Owner.PID == 0 || !c.Owner.Known() {
			t.Errorf("owner %+v", c.Owner)
		}
	})
	t.Run("client from FIN_WAIT1", func(t *testing.T) {
		col, _ := tkRun(dropFirst(evs, client, 3), 0)
		tkCheck(t, col, client, "client", tkVerdict{
			"FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT",
			events.RoleUnknown, events.CloserLocal, events.EndGraceful, events.SideNone, true, true})
	})
	t.Run("client only its CLOSE", func(t *testing.T) {
		col, _ := tkRun(dropFirst(evs, client, 4), 0)
		tkCheck(t, col, client, "client", tkVerdict{
			"FIN_WAIT2>TIME_WAIT",
			events.RoleUnknown, events.CloserLocal, events.EndGraceful, events.SideNone, true, true})
	})
	t.Run("server from CLOSE_WAIT", func(t *testing.T) {
		// Its listener was seen: the child is known as a server.
		col, _ := tkRun(dropFirst(evs, server, 3), 0)
		c := tkCheck(t, col, server, "server", tkVerdict{
			"CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE",
			events.RoleServer, events.CloserPeer, events.EndGraceful, events.SideNone, false, true})
		lc := tkConn(t, col, listener, "listener")
		if c.Owner.PID != lc.Owner.PID {
			t.Errorf("server owner %+v, listener %+v", c.Owner, lc.Owner)
		}
	})
	t.Run("listener from LISTEN", func(t *testing.T) {
		col, _ := tkRun(dropFirst(evs, listener, 1), 0)
		tkCheck(t, col, listener, "listener", tkVerdict{
			"LISTEN>CLOSE", events.RoleListener, events.CloserNone, events.EndClosed, events.SideNone, false, true})
		tkCheck(t, col, server, "server", tkWantPassiveServer)
	})
	t.Run("server without listener, from ESTABLISHED", func(t *testing.T) {
		in := dropFirst(dropFirst(evs, listener, 1), server, 2)
		col, _ := tkRun(in, 0)
		tkCheck(t, col, server, "server", tkVerdict{
			"ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE",
			events.RoleUnknown, events.CloserPeer, events.EndGraceful, events.SideNone, false, true})
	})
}

func tkFirst(col *eventstest.Collector, cookie uint64) *events.Transition {
	for i := range col.Transitions {
		if col.Transitions[i].Conn.Cookie == cookie {
			return &col.Transitions[i]
		}
	}
	return nil
}

// TestTrackerBound feeds recorded sequences to a tracker that keeps at most
// two connections: the least recently active is evicted and counted.
func TestTrackerBound(t *testing.T) {
	t.Run("client_close", func(t *testing.T) {
		evs := tkLoad(t, "client_close")
		s := tkRoles(evs)
		col, tr := tkRun(evs, 2)
		// The listener is idle while its child handshakes: evicted when the
		// child (third socket) appears, seen again at its LISTEN>CLOSE.
		want := events.Stats{Events: uint64(len(evs)), Conns: 4, Finished: 3, Evicted: 1}
		if st := tr.Stats(); st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
		tkCheck(t, col, s.clients[0], "client", tkWantActiveClient)
		tkCheck(t, col, s.servers[0], "server", tkWantPassiveServer)
		// Only the second sighting of the listener finishes: partial.
		tkCheck(t, col, s.listeners[0], "listener", tkVerdict{
			"CLOSE>LISTEN LISTEN>CLOSE", events.RoleListener, events.CloserNone, events.EndClosed, events.SideNone, false, true})
	})
	t.Run("churn", func(t *testing.T) {
		evs := tkLoad(t, "churn")
		col := &eventstest.Collector{}
		tr := events.NewTracker(col, nil, 2)
		for i := range evs {
			ev := evs[i]
			tr.Observe(&ev)
			st := tr.Stats()
			if st.Tracked > 2 {
				t.Fatalf("after event %d: %d tracked, bound 2", i, st.Tracked)
			}
			if st.Conns != st.Finished+st.Evicted+uint64(st.Tracked) {
				t.Fatalf("after event %d: stats %+v do not add up", i, st)
			}
		}
		st := tr.Stats()
		if st.Evicted == 0 || st.Tracked != 0 || st.Inferred != 0 {
			t.Errorf("stats %+v: want evictions, nothing left, nothing inferred", st)
		}
		if uint64(len(col.Conns)) != st.Finished {
			t.Errorf("%d finished conns reported, stats say %d", len(col.Conns), st.Finished)
		}
		// An evicted connection is never reported finished with a whole
		// life: whatever is reported finished either began with its first
		// kernel step or says it is partial.
		for _, c := range col.Conns {
			if !c.Partial && c.Role == events.RoleUnknown {
				t.Errorf("conn %d: unknown role yet not partial", c.Cookie)
			}
		}
		// With room for every socket nothing is evicted.
		if _, tr := tkRun(evs, 101); tr.Stats().Evicted != 0 {
			t.Errorf("evictions with a table of 101: %+v", tr.Stats())
		}
	})
}

// TestTrackerReuse: a socket (cookie) used again after its CLOSE starts a
// new connection; if that CLOSE was lost, the old one is finished first with
// an inferred CLOSE.
func TestTrackerReuse(t *testing.T) {
	refused := tkLoad(t, "refused")
	cookie := refused[0].Cookie
	again := func(base []events.Event, shift uint64) []events.Event {
		var out []events.Event
		for _, e := range refused {
			e.Cookie = cookie
			e.Time = base[len(base)-1].Time + shift + (e.Time - refused[0].Time)
			out = append(out, e)
		}
		return out
	}
	t.Run("after CLOSE", func(t *testing.T) {
		// connect() refused, then connect() again on the same socket.
		in := append(append([]events.Event(nil), refused...), again(refused, 1000)...)
		col, tr := tkRun(in, 0)
		cs := tkConns(col, cookie)
		if len(cs) != 2 {
			t.Fatalf("%d conns finished, want 2", len(cs))
		}
		for _, c := range cs {
			if c.End != events.EndRefused || c.Role != events.RoleClient || c.Inferred != 0 || c.Partial {
				t.Errorf("conn %+v", c)
			}
		}
		if cs[1].Start <= cs[0].Last {
			t.Errorf("second life starts at %d, first ended at %d", cs[1].Start, cs[0].Last)
		}
		if st := tr.Stats(); st.Conns != 2 || st.Finished != 2 || st.Inferred != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("CLOSE lost", func(t *testing.T) {
		// client_close with the client's final CLOSE lost, then a new
		// connection on the same cookie.
		evs := tkLoad(t, "client_close")
		client := tkRoles(evs).clients[0]
		in := tkWithout(evs, client, events.FinWait2, events.Close)
		cookie = client
		in = append(in, again(in, 1000)...)
		col, tr := tkRun(in, 0)
		cs := tkConns(col, client)
		if len(cs) != 2 {
			t.Fatalf("%d conns finished, want 2", len(cs))
		}
		// The first life ends with an inferred FIN_WAIT2>CLOSE: graceful,
		// but the TIME_WAIT handover was not seen.
		old := cs[0]
		if old.End != events.EndGraceful || old.Closer != events.CloserLocal || old.TimeWait || old.Inferred != 1 || old.State != events.Close {
			t.Errorf("first life: end=%v closer=%v timewait=%v inferred=%d state=%v", old.End, old.Closer, old.TimeWait, old.Inferred, old.State)
		}
		if cs[1].End != events.EndRefused || cs[1].Inferred != 0 || cs[1].Role != events.RoleClient {
			t.Errorf("second life: %+v", cs[1])
		}
		seq, _ := tkSeq(col, client)
		want := "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 +FIN_WAIT2>CLOSE CLOSE>SYN_SENT SYN_SENT>CLOSE"
		if got := strings.Join(seq, " "); got != want {
			t.Errorf("transitions\n got %s\nwant %s", got, want)
		}
		if st := tr.Stats(); st.Inferred != 1 || st.Conns != 4 || st.Finished != 4 || st.Tracked != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}
