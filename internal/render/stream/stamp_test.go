package stream

import (
	"io"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// TestStamps: the times of the JSON lines read as time's RFC3339Nano and
// those of the text lines as "15:04:05.000000", across seconds, zones,
// earlier seconds and wall times before 1970.
func TestStamps(t *testing.T) {
	stj, err := time.LoadLocation("America/St_Johns")
	if err != nil {
		t.Skip(err)
	}
	rng := rand.New(rand.NewSource(2))
	c := rendertest.Clock
	for _, c := range []clock.Wall{c, {Offset: c.Offset, Loc: stj}, {Offset: -5e12}, {Offset: math.MinInt64 / 2, Loc: time.UTC}} {
		j := NewJSON(io.Discard, c)
		txt := NewText(io.Discard, style.Options{Clock: c, NoHeader: true})
		mono := uint64(rng.Int63())
		for range 2000 {
			mono += uint64(rng.Int63n(3e9)) >> uint(rng.Intn(30))
			switch rng.Intn(50) {
			case 0:
				mono = rng.Uint64() >> 1
			case 1, 2, 3:
				mono -= mono % 1e9
			case 4, 5, 6:
				mono -= uint64(rng.Int63n(1e10)) // a connection's start
			}
			got := string(j.appendTime(nil, mono))
			if want := `"` + c.Time(mono).Format(time.RFC3339Nano) + `"`; got != want {
				t.Fatalf("mono %d: got %s, want %s", mono, got, want)
			}
			got = string(txt.appendClock(nil, mono))
			if want := c.Time(mono).Format("15:04:05.000000"); got != want {
				t.Fatalf("mono %d: got %s, want %s", mono, got, want)
			}
		}
	}
}
