package render

import (
	"io"
	"maps"
	"math"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
)

func TestAppendDec(t *testing.T) {
	vs := []uint64{0, 1, 9, 10, 99, 100, 999, 1000, 65535, 4194304, math.MaxUint32, 1e19 - 1, 1e19, math.MaxUint64}
	rng := rand.New(rand.NewSource(1))
	for range 1000 {
		vs = append(vs, rng.Uint64()>>uint(rng.Intn(64)))
	}
	for _, v := range vs {
		if got, want := string(appendDec([]byte("x"), v)), "x"+strconv.FormatUint(v, 10); got != want {
			t.Errorf("appendDec(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestClockText: the cached clock agrees with Clock.Wall across seconds,
// zones and negative wall times.
func TestClockText(t *testing.T) {
	stj, err := time.LoadLocation("America/St_Johns")
	if err != nil {
		t.Skip(err)
	}
	rng := rand.New(rand.NewSource(2))
	for _, c := range []Clock{testClock, {Offset: testClock.Offset, Loc: stj}, {Offset: -5e12}, {Offset: math.MinInt64 / 2}} {
		k := clockText{c: c}
		mono := uint64(rng.Int63())
		for range 2000 {
			mono += uint64(rng.Int63n(3e9)) >> uint(rng.Intn(30))
			if rng.Intn(50) == 0 {
				mono = rng.Uint64()
			}
			got := string(k.appendTime(nil, mono))
			if want := c.Wall(mono).Format("15:04:05.000000"); got != want {
				t.Fatalf("mono %d: got %q, want %q", mono, got, want)
			}
		}
	}
}

// TestInk: pre-rendered styles paint as lipgloss does.
func TestInk(t *testing.T) {
	for _, color := range []bool{false, true} {
		st := newStyles(nil, color)
		for s := range 14 {
			k, want := st.stateInk(events.State(s)), st.paint(st.state(events.State(s)), "CLOSE_WAIT")
			if got := string(k.paint(nil, "CLOSE_WAIT")); got != want {
				t.Errorf("color %v state %d: %q, want %q", color, s, got, want)
			}
		}
		for _, p := range []*lipgloss.Style{&st.faint, &st.bold, &st.loss, &st.header} {
			for _, text := range []string{"", "a", "x y", "27.3µs"} {
				if got, want := string(st.inkOf(p).paint(nil, text)), st.paint(*p, text); got != want {
					t.Errorf("color %v: %q, want %q", color, got, want)
				}
			}
		}
	}
}

// TestSegmentKeys: same compares every field of the keys of the segment
// caches, so a cached rendering is reused only for equal inputs.
func TestSegmentKeys(t *testing.T) {
	checkSame(t, func(a, b *whoConn) bool { return a.same(b) })
	checkSame(t, func(a, b *jsonIdent) bool { return a.same(b) })
}

func checkSame[K any](t *testing.T, same func(a, b *K) bool) {
	t.Helper()
	var a K
	if !same(&a, &a) {
		t.Fatalf("%T: not the same as itself", a)
	}
	for i := range reflect.TypeFor[K]().NumField() {
		b := a
		f := reflect.ValueOf(&b).Elem().Field(i)
		f = reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem()
		switch f.Kind() {
		case reflect.Array:
			f.Index(0).SetUint(1)
		case reflect.Struct: // netip.Addr
			f.Set(reflect.ValueOf(netip.MustParseAddr("10.0.0.1")))
		default:
			f.SetUint(1)
		}
		name := reflect.TypeFor[K]().Field(i).Name
		if any(a) == any(b) {
			t.Fatalf("%T: could not change field %s", a, name)
		}
		if same(&a, &b) {
			t.Errorf("%T: a change of field %s goes unseen", a, name)
		}
	}
}

// TestEndsOf: a connection object copies a transition's members from
// "family" to "netns" only when each of their inputs is the connection's.
func TestEndsOf(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	k := jsonIdent{cookie: 7, family: 2, saddr: a, sport: 1, daddr: b, dport: 2, netns: 3, pid: 9}
	base := events.Conn{Cookie: 7, Family: 2, Saddr: a, Sport: 1, Daddr: b, Dport: 2, Netns: 3}
	if !k.endsOf(&base) {
		t.Fatal("the same connection is not recognized")
	}
	for name, change := range map[string]func(c *events.Conn){
		"cookie": func(c *events.Conn) { c.Cookie++ },
		"family": func(c *events.Conn) { c.Family = 10 },
		"saddr":  func(c *events.Conn) { c.Saddr = b },
		"sport":  func(c *events.Conn) { c.Sport++ },
		"daddr":  func(c *events.Conn) { c.Daddr = a },
		"dport":  func(c *events.Conn) { c.Dport++ },
		"netns":  func(c *events.Conn) { c.Netns++ },
	} {
		c := base
		change(&c)
		if k.endsOf(&c) {
			t.Errorf("a change of %s goes unseen", name)
		}
	}
}

// TestIdentEdits: a transition's connection members, edited in place when
// only the local port or only the owner changed, read as rendered afresh.
func TestIdentEdits(t *testing.T) {
	j := NewJSON(io.Discard, testClock)
	var seg segment[jsonIdent]
	id := jsonIdent{cookie: 7, pid: 100, netns: 4026531840, family: 2, dport: 6379, source: events.OwnerSyscall,
		saddr: netip.MustParseAddr("10.0.0.1"), daddr: netip.MustParseAddr("10.0.0.2")}
	copy(id.comm[:], "client")
	rng := rand.New(rand.NewSource(1))
	steps := map[string]func(k *jsonIdent){
		"port":   func(k *jsonIdent) { k.sport = []uint16{0, 7, 80, 443, 6379, 59224, 65535}[rng.Intn(7)] },
		"pid":    func(k *jsonIdent) { k.pid = uint32(rng.Intn(1 << 22)) },
		"comm":   func(k *jsonIdent) { copy(k.comm[:], []string{"redis-cli\x00", "a\x00", "bad\"name"}[rng.Intn(3)]) },
		"source": func(k *jsonIdent) { k.source = events.OwnerSource(rng.Intn(4)) },
		"cookie": func(k *jsonIdent) { k.cookie = rng.Uint64() },
		"daddr":  func(k *jsonIdent) { k.daddr = netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.Intn(256))}) },
		"netns":  func(k *jsonIdent) { k.netns = rng.Uint32() },
	}
	names := slices.Sorted(maps.Keys(steps))
	for i := range 2000 {
		name := names[rng.Intn(len(names))]
		if i%3 != 0 {
			name = []string{"port", "pid", "source"}[i%3] // the edited cases, mostly
		}
		steps[name](&id)
		j.identify(&seg, &id)
		want := j.appendHead(nil, &id)
		tail := len(want)
		want, span := j.appendEnds(want, id.family, id.saddr, id.sport, id.daddr, id.dport, id.netns)
		if string(seg.text) != string(want) || seg.tail != tail || seg.span != span || seg.key != id {
			t.Fatalf("step %d (%s): text %s (tail %d, port %v), want %s (tail %d, port %v)",
				i, name, seg.text, seg.tail, seg.span, want, tail, span)
		}
	}
}
