package clock

import (
	"testing"
	"time"
)

func TestLive(t *testing.T) {
	got := Live().Time(Mono())
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Errorf("Live is off by %v", d)
	}
	if (Wall{}).Time(0).Location() != time.Local {
		t.Error("nil Loc should mean time.Local")
	}
}
