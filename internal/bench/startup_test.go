package bench

// BenchmarkPileStartup: tcptrace started beside a 200k TIME_WAIT pile (in
// one namespace, and spread over 64). It measures, against ss(8)'s count of
// the same sockets:
//
//   - live: the time from starting `tcptrace --json --port P` until its
//     start-up line "read N namespaces ... predate tracing" shows, the count
//     that line gives, and the process's peak RSS after 2 s more of tracing
//     (the pile held by its diagnosis);
//   - report: the time `tcptrace report --json --port P --duration 1s`
//     takes from start to exit, the TIME_WAIT its namespace rows give for
//     the pile's namespaces, and its peak RSS.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

func BenchmarkPileStartup(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, spec := range []pileSpec{pileSpecs[2], pileSpecs[3]} {
		b.Run(spec.name, func(b *testing.B) {
			bin := tcptraceBinary(b)
			pl := &pile{spec: spec, port: int(churnPort())}
			defer pl.remove()
			pl.ensure(b)
			ss, err := pl.ssCount()
			if err != nil {
				b.Fatalf("ss: %v", err)
			}
			b.ReportMetric(float64(ss), "ss-count")
			b.ReportMetric(float64(pl.took[0].Milliseconds())/1e3, "pile-build-s")
			dir := b.TempDir()
			port := strconv.Itoa(pl.port)

			shown, count, rss := liveStartup(b, bin, dir, port)
			b.ReportMetric(shown.Seconds(), "live-shown-s")
			b.ReportMetric(float64(count)/float64(ss), "live/ss")
			b.ReportMetric(float64(rss)/(1<<20), "live-peak-RSS-MiB")

			took, tw, rss := reportStartup(b, bin, dir, port, pl)
			b.ReportMetric(took.Seconds(), "report-s")
			b.ReportMetric(float64(tw)/float64(ss), "report/ss")
			b.ReportMetric(float64(rss)/(1<<20), "report-peak-RSS-MiB")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: ss %d; live line after %v with %d; report in %v with %d", spec.name, ss, shown.Round(time.Millisecond), count, took.Round(time.Millisecond), tw)
		})
	}
}

var predateLine = regexp.MustCompile(`read (\d+) namespaces at start in \S+: (\d+) TIME_WAIT`)

// liveStartup runs the live binary until its start-up line shows, then 2 s
// more, and returns when the line showed, its TIME_WAIT count and the
// process's peak RSS.
func liveStartup(b *testing.B, bin, dir, port string) (time.Duration, int, int64) {
	out, err := os.Create(filepath.Join(dir, "live.out"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	errPath := filepath.Join(dir, "live.err")
	errf, err := os.Create(errPath)
	if err != nil {
		b.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(bin, "--json", "--port", port)
	cmd.Stdout, cmd.Stderr = out, errf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var shown time.Duration
	count := -1
	for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		raw, _ := os.ReadFile(errPath)
		if m := predateLine.FindSubmatch(raw); m != nil {
			shown = time.Since(start)
			count, _ = strconv.Atoi(string(m[2]))
			break
		}
	}
	if count < 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		raw, _ := os.ReadFile(errPath)
		b.Fatalf("no start-up line in 30 s: %s", raw)
	}
	time.Sleep(2 * time.Second)
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		raw, _ := os.ReadFile(errPath)
		b.Fatalf("tcptrace: %v: %s", err, raw)
	}
	return shown, count, maxRSS(cmd)
}

// reportStartup runs `tcptrace report --json --duration 1s` and returns how
// long it took, the TIME_WAIT of the pile's namespaces in its report and
// its peak RSS.
func reportStartup(b *testing.B, bin, dir, port string, pl *pile) (time.Duration, int, int64) {
	cmd := exec.Command(bin, "report", "--json", "--port", port, "--duration", "1s")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("tcptrace report: %v: %s", err, stderr.Bytes())
	}
	took := time.Since(start)
	inodes := map[uint32]bool{}
	for _, n := range pl.nss {
		inodes[n.Inode] = true
	}
	var rep struct {
		Netns []struct {
			Netns    uint32 `json:"netns"`
			TimeWait int    `json:"time_wait_sockets"`
		} `json:"namespaces"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		b.Fatalf("tcptrace report --json: %v", err)
	}
	tw, found := 0, 0
	for _, row := range rep.Netns {
		if inodes[row.Netns] {
			found++
			tw += row.TimeWait
		}
	}
	b.ReportMetric(float64(found)/float64(len(pl.nss)), "report-netns-rows/netns")
	if found != len(pl.nss) {
		b.Logf("the report has rows for %d of the pile's %d namespaces", found, len(pl.nss))
	}
	return took, tw, maxRSS(cmd)
}

// maxRSS returns an exited command's peak RSS in bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}
