package diagnosis

import (
	"math/bits"
	"time"
)

// subBuckets splits each power of two of a histogram (4: ≤19% error).
const subBuckets = 4

// Hist is a log-bucketed histogram of durations: fixed size, any count.
type Hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    uint64
}

// bucket returns the bucket of v ns.
func bucket(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	hi := bits.Len64(v) - 1 // ≥ 2
	sub := (v >> (hi - 2)) & (subBuckets - 1)
	return hi*subBuckets + int(sub)
}

// upper returns the largest value of bucket i.
func upper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	hi, sub := i/subBuckets, uint64(i%subBuckets)
	base := uint64(1) << hi
	step := base / subBuckets
	return base + (sub+1)*step - 1
}

// Add counts one duration (negative ones as 0).
func (h *Hist) Add(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)]++
	h.n++
	h.max = max(h.max, v)
}

// Count returns how many durations were added.
func (h *Hist) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0..1), within a bucket's width, never
// above the largest value added.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(upper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Max returns the largest duration added.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Percentiles summarise a histogram.
type Percentiles struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"-"`
	P90   time.Duration `json:"-"`
	P99   time.Duration `json:"-"`
	Max   time.Duration `json:"-"`
}

// Percentiles returns the histogram's p50, p90, p99 and max.
func (h *Hist) Percentiles() Percentiles {
	return Percentiles{Count: h.n, P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), Max: h.Max()}
}
