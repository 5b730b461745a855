package render

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// TestTimeWaitEndFastPath: the allocation-free line is byte for byte the
// general one, text and JSON, colour or not, for plain names.
func TestTimeWaitEndFastPath(t *testing.T) {
	var comm events.Comm
	copy(comm[:], "app worker-1")
	ends := []diagnosis.TimeWaitEnd{
		{Time: 842_000_000_123, Cookie: 77, Owner: diagnosis.ProcKey{PID: 4242, Comm: comm},
			Dest:  diagnosis.Dest{Netns: 4026531840, Saddr: netip.MustParseAddr("10.0.0.1"), Daddr: netip.MustParseAddr("10.0.0.2"), Dport: 6379},
			Sport: 40001, Held: 60 * time.Second},
		{Time: 1, Cookie: 1 << 60, Dest: diagnosis.Dest{Saddr: netip.MustParseAddr("fe80::1%eth0"), Daddr: netip.MustParseAddr("::1"), Lport: 8080},
			Held: 1234567 * time.Nanosecond},
		{Time: 5, Owner: diagnosis.ProcKey{Comm: comm}, Held: 0},
	}
	for _, asJSON := range []bool{false, true} {
		for _, o := range []Options{{Clock: testClock}, {Clock: testClock, Color: true}, {Clock: testClock, ASCII: true}} {
			for i := range ends {
				e := &ends[i]
				if !fastTimeWaitEnd(e) {
					t.Fatalf("end %d: want the fast path", i)
				}
				var slow, fast bytes.Buffer
				NewWarnings(&slow, o, asJSON).timeWaitEndSlow(e)
				v := NewWarnings(&fast, o, asJSON)
				v.TimeWaitEnd(e)
				if fast.String() != slow.String() {
					t.Errorf("json=%v color=%v ascii=%v end %d:\nfast %q\nslow %q", asJSON, o.Color, o.ASCII, i, fast.String(), slow.String())
				}
				if a := testing.AllocsPerRun(20, func() { v.TimeWaitEnd(e) }); a > 0 {
					t.Errorf("end %d: %v allocations per line", i, a)
				}
			}
		}
	}
	copy(comm[:], "a<b")
	if fastTimeWaitEnd(&diagnosis.TimeWaitEnd{Owner: diagnosis.ProcKey{Comm: comm}}) {
		t.Error("a name JSON escapes took the fast path")
	}
}
