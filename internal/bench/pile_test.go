package bench

// The TIME_WAIT piles of BenchmarkChurn: sockets that predate the tracer,
// made in namespaces of their own (not the workload's) by
// testutil.MakeTimeWait, so that the tcptrace binary reads them at start-up
// and its diagnosis holds them while the workload runs.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// pileMaxAge is the age after which a pile is made again: a TIME_WAIT lives
// 60 s, and a pile must not expire under a traced run.
const pileMaxAge = 40 * time.Second

// pileSpec is one pile variant: size TIME_WAIT sockets over spread namespaces.
type pileSpec struct {
	name   string
	size   int
	spread int
}

// pileSpecs are BenchmarkChurn's pile variants.
var pileSpecs = []pileSpec{
	{"pile-0", 0, 1},
	{"pile-50k", 50_000, 1},
	{"pile-200k", 200_000, 1},
	{"pile-200k-64ns", 200_000, 64},
}

// pile is a pile of TIME_WAIT sockets toward port, made again when older
// than pileMaxAge.
type pile struct {
	spec  pileSpec
	port  int
	nss   []*testutil.Netns
	built time.Time
	took  []time.Duration // each build, namespaces included
}

// ensure makes the pile unless it exists and is younger than pileMaxAge.
func (p *pile) ensure(tb testing.TB) {
	if p.spec.size == 0 || (p.nss != nil && time.Since(p.built) < pileMaxAge) {
		return
	}
	p.remove()
	p.build(tb)
}

// build makes the pile's namespaces and sockets, on every CPU: a 200k pile
// in one namespace is two halves toward two addresses.
func (p *pile) build(tb testing.TB) {
	start := time.Now()
	nss := make([]*testutil.Netns, p.spec.spread)
	err := parallel(len(nss), func(i int) (err error) {
		nss[i], err = testutil.MakeNetns(nil)
		return err
	})
	for _, n := range nss {
		if n != nil {
			p.nss = append(p.nss, n)
		}
	}
	if err != nil {
		tb.Fatalf("pile namespace: %v", err)
	}
	type part struct {
		ns  *testutil.Netns
		src [3]byte
		dst [4]byte
		n   int
	}
	var parts []part
	if len(nss) == 1 {
		half := p.spec.size / 2
		parts = []part{{nss[0], [3]byte{127, 1, 0}, [4]byte{127, 0, 0, 1}, half},
			{nss[0], [3]byte{127, 2, 0}, [4]byte{127, 0, 0, 2}, p.spec.size - half}}
	} else {
		for _, n := range nss {
			parts = append(parts, part{n, [3]byte{127, 1, 0}, [4]byte{127, 0, 0, 1}, p.spec.size / len(nss)})
		}
	}
	err = parallel(len(parts), func(i int) error {
		pt := parts[i]
		return pt.ns.Do(func() error {
			made, err := testutil.MakeTimeWait(pt.src, pt.dst, p.port, pt.n, true)
			if err != nil {
				return fmt.Errorf("making %d TIME_WAIT in %s: made %d: %w", pt.n, pt.ns.Name, made, err)
			}
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	p.built = time.Now()
	p.took = append(p.took, p.built.Sub(start))
	tb.Logf("%s: made %d TIME_WAIT in %d namespaces in %v", p.spec.name, p.count(), len(p.nss), p.built.Sub(start).Round(time.Millisecond))
	waitQuiet(2 * time.Second)
}

// parallel runs fn(0..n-1), as many at once as there are CPUs, and
// returns the first error.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := 0; w < min(runtime.NumCPU(), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs[i] = fn(i)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// remove deletes the pile's namespaces (and so their sockets), then waits
// until the kernel's clean-up of them has quieted down.
func (p *pile) remove() {
	if p.nss == nil {
		return
	}
	for _, n := range p.nss {
		n.Remove()
	}
	p.nss = nil
	waitQuiet(10 * time.Second)
}

// count returns the TIME_WAIT sockets of the pile's namespaces, from their
// /proc/net/sockstat ("TCP: ... tw N").
func (p *pile) count() int {
	total := 0
	for _, n := range p.nss {
		_ = n.Do(func() error {
			raw, err := os.ReadFile("/proc/thread-self/net/sockstat")
			if err != nil {
				return err
			}
			total += sockstatTW(string(raw))
			return nil
		})
	}
	return total
}

// sockstatTW returns the tw field of a sockstat's TCP line.
func sockstatTW(s string) int {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				n, _ := strconv.Atoi(f[i+1])
				return n
			}
		}
	}
	return 0
}

// ssCount counts the pile's TIME_WAIT sockets as ss(8) lists them.
func (p *pile) ssCount() (int, error) {
	total := 0
	for _, n := range p.nss {
		out, err := n.Exec("ss", "-H", "-tan", "state", "time-wait")
		if err != nil {
			return 0, err
		}
		total += strings.Count(out, "\n")
	}
	return total, nil
}

// waitQuiet waits, up to limit, for a 100 ms span in which the CPUs were
// at least 90 % idle (/proc/stat), so that one variant's clean-up (a
// namespace's sockets purged) does not load the next one's rounds; it
// reports whether one came.
func waitQuiet(limit time.Duration) bool {
	idle0, total0 := cpuTimes()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		idle, total := cpuTimes()
		if total > total0 && float64(idle-idle0)/float64(total-total0) >= 0.9 {
			return true
		}
		idle0, total0 = idle, total
	}
	return false
}

// cpuTimes returns the idle and total jiffies of /proc/stat's cpu line.
func cpuTimes() (idle, total uint64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text())
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return idle, total
}

// BenchmarkPileBuild makes the benchmarks' 200k piles and reports how long
// each took: a check of the pile maker (go test -run '^$' -bench PileBuild).
func BenchmarkPileBuild(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, spec := range []pileSpec{{"pile-200k", 200_000, 1}, {"pile-200k-64ns", 200_000, 64}} {
		b.Run(spec.name, func(b *testing.B) {
			for range b.N {
				p := &pile{spec: spec, port: 9999}
				start := time.Now()
				p.build(b)
				built := time.Since(start)
				got := p.count()
				ss, err := p.ssCount()
				start = time.Now()
				p.remove()
				b.Logf("%s: built in %v; sockstat tw %d, ss %d (%v); removed and quiet in %v", spec.name,
					built.Round(time.Millisecond), got, ss, err, time.Since(start).Round(time.Millisecond))
				if got < spec.size {
					b.Errorf("%s: %d TIME_WAIT, want %d", spec.name, got, spec.size)
				}
				b.ReportMetric(built.Seconds(), "build-s")
			}
		})
	}
}
