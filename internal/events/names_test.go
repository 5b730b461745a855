package events_test

import (
	"strconv"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

// TestStringAnyValue checks that every enum's String is safe on any value
// (a damaged capture or a newer kernel can carry any byte): known values
// keep their names, others read as the prefix and the number.
func TestStringAnyValue(t *testing.T) {
	type enum struct {
		name   string
		str    func(uint8) string
		known  int // values with names: 0 .. known-1
		prefix string
	}
	enums := []enum{
		{"State", func(v uint8) string { return events.State(v).String() }, int(events.NewSynRecv) + 1, "STATE_"},
		{"TwOp", func(v uint8) string { return events.TwOp(v).String() }, int(events.TwFound) + 1, "op_"},
		{"Role", func(v uint8) string { return events.Role(v).String() }, int(events.RoleListener) + 1, "role"},
		{"Closer", func(v uint8) string { return events.Closer(v).String() }, int(events.CloserSimultaneous) + 1, "closer"},
		{"End", func(v uint8) string { return events.End(v).String() }, int(events.EndClosed) + 1, "end"},
		{"Side", func(v uint8) string { return events.Side(v).String() }, int(events.SidePeer) + 1, "side"},
		{"OwnerSource", func(v uint8) string { return events.OwnerSource(v).String() }, int(events.OwnerProc) + 1, "source"},
	}
	for _, e := range enums {
		for v := 0; v < 256; v++ {
			got := e.str(uint8(v))
			want := e.prefix + strconv.Itoa(v)
			if v < e.known {
				if got == want {
					t.Errorf("%s(%d) = %q: a known value has no name", e.name, v, got)
				}
				continue
			}
			if got != want {
				t.Errorf("%s(%d) = %q, want %q", e.name, v, got, want)
			}
		}
	}
	for _, c := range []struct {
		got, want string
	}{
		{events.Established.String(), "ESTABLISHED"},
		{events.TwReuse.String(), "reuse"},
		{events.TwNone.String(), ""},
		{events.RoleServer.String(), "server"},
		{events.CloserPeer.String(), "peer"},
		{events.EndRefused.String(), "refused"},
		{events.SideNone.String(), ""},
		{events.OwnerProc.String(), "proc"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q, want %q", c.got, c.want)
		}
	}
	for s := events.Unknown; s <= events.NewSynRecv; s++ {
		if got, ok := events.ParseState(s.String()); !ok || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, ok)
		}
	}
}
