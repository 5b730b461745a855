package diagnosis

import (
	"math"
	"slices"
	"time"
)

// predict is the forecast's reference: a pure function of its inputs and
// exp, every held timewait socket's remaining timer (nil: Held of them
// spread evenly over TimeWaitLen), one by one. The engine's forecast
// (predictTimers, over runs of timers) is checked against it.
func predict(in Inputs, exp []time.Duration) Forecast {
	s := in.Sysctls
	f := Forecast{Ports: s.Ports(), Hold: TimeWaitLen, Steady: in.Rate * TimeWaitLen.Seconds()}
	f.Usable = max(f.Ports-max(in.InUse, 0), 0)
	f.Reuse = s.Reuses(in.Loopback)
	if f.Reuse {
		f.Hold = min(s.ReuseDelay, TimeWaitLen)
	}
	exp = expiries(in, exp, f.Reuse, f.Hold)
	f.Blocking = len(exp)
	f.Left = max(f.Usable-f.Blocking, 0)
	if capped(&in, f.Usable) {
		f.Capped, f.Never = true, true
		return f
	}
	eta, ok := exhaustion(exp, f.Usable, in.Rate, f.Hold)
	f.Never, f.ETA = !ok, eta
	return f
}

// expiries returns, sorted, how long each held TIME_WAIT keeps its port from
// connect(): its timer, or with reuse what is left of the reuse delay.
func expiries(in Inputs, timers []time.Duration, reuse bool, hold time.Duration) []time.Duration {
	held := max(in.Held, 0)
	exp := make([]time.Duration, 0, held)
	if timers != nil {
		exp = append(exp, timers...)
	} else {
		for i := range held {
			exp = append(exp, TimeWaitLen*time.Duration(i+1)/time.Duration(held))
		}
	}
	if reuse {
		// Reusable once older than the delay: TimeWaitLen-remaining ≥ hold.
		kept := exp[:0]
		for _, e := range exp {
			if d := e - (TimeWaitLen - hold); d > 0 {
				kept = append(kept, d)
			}
		}
		exp = kept
	}
	slices.Sort(exp)
	return exp
}

// exhaustion finds the first t ≥ 0 at which the blocked ports reach usable:
// blocked(t) = (held sockets whose exp > t) + rate·min(t, hold).
func exhaustion(exp []time.Duration, usable int, rate float64, hold time.Duration) (time.Duration, bool) {
	if usable <= 0 {
		return 0, true
	}
	n := len(exp)
	start := time.Duration(0)
	for k := 0; k <= n; k++ {
		old := n - k
		if k > 0 {
			start = exp[k-1]
		}
		end := time.Duration(math.MaxInt64)
		if k < n {
			end = exp[k]
		}
		if old >= usable {
			return start, true
		}
		if rate <= 0 {
			continue
		}
		t := time.Duration(float64(usable-old) / rate * float64(time.Second))
		if t > hold {
			continue // the new ones expire before they fill the range
		}
		t = max(t, start)
		if t < end {
			return t, true
		}
	}
	return 0, false
}
