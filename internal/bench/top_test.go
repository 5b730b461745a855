package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// BenchmarkTop measures `tcptrace top` on a pseudo-terminal against plain
// `tcptrace --json > file` under the same churn, in alternating runs of
// the same rounds, each in a fresh namespace, without a TIME_WAIT pile and
// beside one of 50k (other namespaces, the workload's port): CPU-s per million events of
// each and their ratio (issue 18: within 10 %). Events are those each
// counted (its exit summary), CPU from the ready point to the drained one.
func BenchmarkTop(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, spec := range []pileSpec{pileSpecs[0], pileSpecs[1]} { // without a pile, and beside 50k TIME_WAIT
		b.Run(spec.name, func(b *testing.B) {
			pl := &pile{spec: spec, port: int(churnPort())}
			defer pl.remove()
			benchTop(b, pl)
		})
	}
}

// benchTop runs BenchmarkTop's rounds beside pl.
func benchTop(b *testing.B, pl *pile) {
	bin := tcptraceBinary(b)
	e := newChurnEnv(b)
	e.movePort = pl.spec.size == 0
	pl.ensure(b)
	rounds := envInt("TCPTRACE_BENCH_ROUNDS", 5)
	var perM [2][]float64 // json, top
	for r := 0; r < rounds; r++ {
		pl.ensure(b) // made again before it could expire in the round
		for k := 0; k < 2; k++ {
			which := (r + k) % 2
			e.fresh(b, clientClosesFirst)
			cpu, events := topRun(b, bin, e, which == 1)
			if events > 0 {
				perM[which] = append(perM[which], cpu.Seconds()/float64(events)*1e6)
			}
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	j, t := med(perM[0]), med(perM[1])
	b.ReportMetric(j, "json-cpu-s/Mevents")
	b.ReportMetric(t, "top-cpu-s/Mevents")
	if j > 0 {
		b.ReportMetric(t/j, "top/json")
	}
	b.Logf("per-round CPU-s/M events: json %v, top %v", perM[0], perM[1])
}

// summaryEventsRE finds the text summary's event count.
var summaryEventsRE = regexp.MustCompile(`(?m)^events\s+(\d+) transitions observed`)

// topRun runs one tracer through one churn run and returns its CPU over
// the run and the transitions it counted.
func topRun(b *testing.B, bin string, e *churnEnv, top bool) (time.Duration, uint64) {
	port := strconv.Itoa(int(e.port))
	var cmd *exec.Cmd
	var stderr bytes.Buffer
	var term *testutil.Term
	out := filepath.Join(b.TempDir(), "out.jsonl")
	if top {
		cmd = exec.Command(bin, "top", "--port", port)
		cmd.Stderr = &stderr
		term = testutil.StartOnTerminal(b, cmd, 120, 40)
		if !term.WaitFor(30*time.Second, "DESTINATIONS") {
			b.Fatalf("top did not draw: %s", stderr.String())
		}
	} else {
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd = exec.Command(bin, "--json", "--port", port)
		cmd.Stdout, cmd.Stderr = f, &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "tracing TCP"); {
			if time.Now().After(deadline) {
				b.Fatalf("tcptrace did not start: %s", stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pid := cmd.Process.Pid
	settle := func() time.Duration { // the first 100 ms in which it used under 5 ms
		c0, _ := procCPU(pid)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			c, _ := procCPU(pid)
			if c-c0 < 5*time.Millisecond {
				return c
			}
			c0 = c
		}
		return c0
	}
	cpu0 := settle()
	e.run(clientClosesFirst)
	cpu := settle() - cpu0
	var events uint64
	if top {
		_ = term.Type("q")
		if err := term.Wait(30 * time.Second); err != nil {
			b.Fatalf("top: %v: %s", err, stderr.String())
		}
		if m := summaryEventsRE.FindStringSubmatch(stderr.String()); m != nil {
			events, _ = strconv.ParseUint(m[1], 10, 64)
		}
	} else {
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("tcptrace: %v: %s", err, stderr.String())
		}
		raw, _ := os.ReadFile(out)
		lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
		var sum struct {
			Events uint64 `json:"events"`
		}
		_ = json.Unmarshal(lines[len(lines)-1], &sum)
		events = sum.Events
	}
	if events == 0 {
		b.Fatalf("no event count (top %v): %s", top, stderr.String())
	}
	return cpu, events
}
