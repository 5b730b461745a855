package report

import (
	"bytes"
	"maps"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// incidentReport is a hand-built report of the port-exhaustion incident.
func incidentReport() *diagnosis.Report {
	cli := diagnosis.ProcKey{PID: 4242, Comm: events.MakeComm("python3")}
	dest := diagnosis.Dest{Netns: 4026532177, Saddr: netip.MustParseAddr("10.201.1.1"),
		Daddr: netip.MustParseAddr("10.201.1.2"), Dport: 8080}
	srv := diagnosis.Dest{Netns: 4026532240, Saddr: netip.MustParseAddr("10.201.1.2"), Lport: 8080}
	s := diagnosis.Sysctls{PortLo: 40000, PortHi: 40063, TwReuse: 0, Timestamps: 1, MaxTwBuckets: 131072,
		ReuseDelay: time.Second, Known: true}
	// The forecasts of 16 held and 10 new per second, and of 64 held and none new.
	f := diagnosis.Forecast{Ports: 64, Usable: 64, Blocking: 16, Left: 48, Hold: time.Minute, Steady: 600, ETA: 4900 * time.Millisecond}
	w := diagnosis.Warning{Kind: diagnosis.KindExhaustion, Time: 781_500_000_000, Dest: dest, Owner: cli,
		Rate: 10, Held: 16, Forecast: f, Sysctls: s}
	full := diagnosis.Forecast{Ports: 64, Usable: 64, Blocking: 64, Hold: time.Minute}
	return &diagnosis.Report{
		Elapsed: 7 * time.Second,
		Closers: []diagnosis.CloserRow{{Owner: cli, ActiveCloses: 64, Finished: 120, Established: 64, FailedConnects: 56,
			Dests: []diagnosis.DestCount{{Dest: dest, Count: 64}}}},
		TimeWait: []diagnosis.TimeWaitRow{{Dest: dest, Owner: cli, Known: true, Count: 64},
			{Dest: srv, Count: 3}},
		Failed: []diagnosis.FailedRow{{Owner: cli, Dest: dest, Err: "EADDRNOTAVAIL", Count: 56}},
		Ends:   []diagnosis.EndRow{{End: "graceful", Count: 64}, {End: "failed", Count: 56}},
		Lifetime: diagnosis.Percentiles{Count: 120, P50: 900 * time.Microsecond, P90: 2 * time.Millisecond,
			P99: 4 * time.Millisecond, Max: 5 * time.Millisecond},
		States: []diagnosis.StateRow{{State: "ESTABLISHED", Time: diagnosis.Percentiles{Count: 64,
			P50: 400 * time.Microsecond, P90: time.Millisecond, P99: 2 * time.Millisecond, Max: 3 * time.Millisecond}}},
		Forecasts: []diagnosis.ForecastRow{{Dest: dest, Owner: cli, Inputs: diagnosis.Inputs{Sysctls: s, Held: 64},
			Forecast: full, Failed: 56}},
		Namespaces: []diagnosis.NetnsRow{{Netns: 4026532177, Sysctls: s, From: "live", TimeWait: 64, Method: diagnosis.MethodEvents},
			{Netns: 4026532240, Sysctls: diagnosis.DefaultSysctls, From: "default", TimeWait: 3, Unknown: 3, Method: diagnosis.MethodTable}},
		Warnings: []diagnosis.Warning{w},
	}
}

// TestReportGolden: the report and the exit diagnosis fit 80 and 120
// columns, in text, ASCII and JSON.
func TestReportGolden(t *testing.T) {
	r := incidentReport()
	for _, w := range []int{80, 120} {
		o := style.Options{Clock: rendertest.Clock, Width: w}
		var b bytes.Buffer
		if err := WriteText(&b, o, Options{Title: "tcptrace report (live, 7s)"}, r); err != nil {
			t.Fatal(err)
		}
		rendertest.CheckWidth(t, b.String(), w)
		rendertest.Golden(t, "incident.report"+strconv.Itoa(w)+".golden", b.Bytes())
		b.Reset()
		o.ASCII = true
		if err := WriteText(&b, o, Options{Title: "tcptrace diagnosis", Short: true}, r); err != nil {
			t.Fatal(err)
		}
		rendertest.CheckWidth(t, b.String(), w)
		rendertest.Golden(t, "incident.report-short.ascii"+strconv.Itoa(w)+".golden", b.Bytes())
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, rendertest.Clock, r); err != nil {
		t.Fatal(err)
	}
	rendertest.Golden(t, "incident.report.json.golden", b.Bytes())
	if err := WriteText(&b, style.Options{}, Options{}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestReportFits: at every width from the narrowest to a wide terminal,
// no line is wider than the terminal, and every number of the widest
// layout is still there, whole.
func TestReportFits(t *testing.T) {
	for name, r := range map[string]*diagnosis.Report{"incident": incidentReport(), "timewait": timeWaitReport()} {
		label := func(pid uint32) string { return "[container 0123456789ab]" }
		numbers := func(w int) map[string]bool {
			var b bytes.Buffer
			if err := WriteText(&b, style.Options{Clock: rendertest.Clock, Width: w}, Options{Title: "tcptrace report", ProcLabel: label}, r); err != nil {
				t.Fatal(err)
			}
			rendertest.CheckWidth(t, b.String(), max(w, style.MinWidth))
			set := map[string]bool{}
			for _, n := range digits.FindAllString(b.String(), -1) {
				set[n] = true
			}
			return set
		}
		wide := numbers(400)
		for w := style.MinWidth; w <= 160; w += 4 {
			if got := numbers(w); !maps.Equal(got, wide) {
				t.Errorf("%s at %d columns: numbers %v, want %v", name, w, got, wide)
			}
		}
	}
}

// digits are the numbers of a report.
var digits = regexp.MustCompile(`[0-9][0-9.:/%-]*`)

func TestWarningsGolden(t *testing.T) {
	r := incidentReport()
	end := &diagnosis.TimeWaitStep{Time: 842_000_000_000, Op: events.TwExpire, Old: events.TimeWait, New: events.Close,
		Cookie: 77, Owner: r.Closers[0].Owner, Known: true, Dest: r.Forecasts[0].Dest, Sport: 40001, Held: 60 * time.Second}
	fail := &diagnosis.FailedNotice{Time: 783_000_000_000, Owner: r.Closers[0].Owner, Dest: r.Forecasts[0].Dest,
		Err: 99, New: 12, Total: 20}
	churn := r.Warnings[0]
	churn.Kind, churn.Lifetime = diagnosis.KindChurn, 500*time.Millisecond
	for _, asJSON := range []bool{false, true} {
		var b bytes.Buffer
		v := NewWarnings(&b, style.Options{Clock: rendertest.Clock}, asJSON)
		v.Warning(&r.Warnings[0])
		v.Warning(&churn)
		v.Failed(fail)
		v.TimeWait(end)
		v.Warning(nil)
		v.Failed(nil)
		v.TimeWait(nil)
		name := "incident.warnings.text.golden"
		if asJSON {
			name = "incident.warnings.json.golden"
		}
		rendertest.Golden(t, name, b.Bytes())
	}
}

// TestWriteDiagnosis: on exit, the short report when something is at risk,
// else one line that counts in the singular what is one.
func TestWriteDiagnosis(t *testing.T) {
	var b bytes.Buffer
	o := style.Options{Width: 80}
	calm := &diagnosis.Report{Namespaces: []diagnosis.NetnsRow{{Netns: 1, TimeWait: 3}, {Netns: 2, TimeWait: -1}}}
	if err := WriteDiagnosis(&b, o, calm, nil); err != nil {
		t.Fatal(err)
	}
	want := "tcptrace diagnosis: no port exhaustion forecast, no failed connects (3 TIME_WAIT\n  now in 1 namespace)\n"
	if b.String() != want {
		t.Errorf("calm diagnosis:\n%q, want\n%q", b.String(), want)
	}
	b.Reset()
	if err := WriteDiagnosis(&b, o, incidentReport(), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "tcptrace diagnosis\n") || !strings.Contains(b.String(), "EADDRNOTAVAIL") {
		t.Errorf("incident diagnosis:\n%s", b.String())
	}
	rendertest.CheckWidth(t, b.String(), 80)
}
