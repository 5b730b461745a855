package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memLimit keeps the Go runtime's soft memory limit at the larger of a
// floor and what the process needs beside its heap plus 1.5 × the heap
// found live by the last collection, re-read at most once a second. The
// floor keeps the tracer's resident memory low under churn (the GC works
// harder instead of letting the heap double); following the live heap
// keeps a growing connection table from collecting back to back. The limit
// counts the runtime's other memory (stacks, GC metadata, heap
// fragmentation) too: a limit of 1.5 × the live heap alone left a live heap
// of 21 MiB a goal of 23 MiB, a collection every 2 MiB allocated (79 in a
// 4-second run where 19 sufficed).
type memLimit struct {
	floor  int64
	set    int64
	last   time.Time
	sample []metrics.Sample
}

// The runtime metrics memLimit reads, in this order.
var memMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes", "/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes"}

// newMemLimit applies floor and returns the limit to adjust, or nil when
// GOMEMLIMIT is set (the user's limit stands).
func newMemLimit(floor int64) *memLimit {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	debug.SetMemoryLimit(floor)
	m := &memLimit{floor: floor, set: floor, last: time.Now()}
	for _, name := range memMetrics {
		m.sample = append(m.sample, metrics.Sample{Name: name})
	}
	return m
}

// adjust re-reads the live heap and the other memory, at most once a
// second, and moves the limit when it should change by more than a tenth.
func (m *memLimit) adjust() {
	if m == nil || time.Since(m.last) < time.Second {
		return
	}
	m.last = time.Now()
	metrics.Read(m.sample)
	var v [5]int64
	for i, s := range m.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return
		}
		v[i] = int64(s.Value.Uint64())
	}
	live, total, released, free, objects := v[0], v[1], v[2], v[3], v[4]
	other := max(0, total-released-free-objects) // stacks, metadata, fragmentation
	want := max(m.floor, other+live*3/2)
	if d := want - m.set; d > m.set/10 || -d > m.set/10 {
		m.set = want
		debug.SetMemoryLimit(want)
	}
}
