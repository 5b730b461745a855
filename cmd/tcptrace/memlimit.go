package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memLimit keeps the Go runtime's soft memory limit at the larger of a
// floor and 1.5 × the heap found live by the last collection, re-read at
// most once a second. The floor keeps the tracer's resident memory low
// under churn (the GC works harder instead of letting the heap double);
// following the live heap keeps a host with a big connection table from
// collecting back to back once its live data outgrows the floor.
type memLimit struct {
	floor  int64
	set    int64
	last   time.Time
	sample []metrics.Sample
}

// newMemLimit applies floor and returns the limit to adjust, or nil when
// GOMEMLIMIT is set (the user's limit stands).
func newMemLimit(floor int64) *memLimit {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	debug.SetMemoryLimit(floor)
	return &memLimit{floor: floor, set: floor, last: time.Now(),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
}

// adjust re-reads the live heap, at most once a second, and moves the
// limit when it should change by more than a tenth.
func (m *memLimit) adjust() {
	if m == nil || time.Since(m.last) < time.Second {
		return
	}
	m.last = time.Now()
	metrics.Read(m.sample)
	if m.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := max(m.floor, int64(m.sample[0].Value.Uint64())*3/2)
	if d := want - m.set; d > m.set/10 || -d > m.set/10 {
		m.set = want
		debug.SetMemoryLimit(want)
	}
}
