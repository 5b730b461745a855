package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// timeWaitSteps are one of each step a timewait socket reports after its
// connection's CLOSE, known owners and predating ones, IPv4 and IPv6.
func timeWaitSteps() []diagnosis.TimeWaitStep {
	cli := diagnosis.ProcKey{PID: 4242, Comm: events.MakeComm("python3")}
	hint := diagnosis.ProcKey{PID: 1234, Comm: events.MakeComm("redis-cli")}
	dest := diagnosis.Dest{Netns: 4026532177, Saddr: netip.MustParseAddr("10.201.1.1"),
		Daddr: netip.MustParseAddr("10.201.1.2"), Dport: 8080}
	v6 := diagnosis.Dest{Netns: 4026531840, Saddr: netip.MustParseAddr("2001:db8::2"),
		Daddr: netip.MustParseAddr("2001:db8::1"), Dport: 6379}
	srv := diagnosis.Dest{Netns: 4026532240, Saddr: netip.MustParseAddr("10.201.1.2"), Lport: 8080}
	at := uint64(790_000_000_000)
	step := func(op events.TwOp, old, neu events.State, held time.Duration) diagnosis.TimeWaitStep {
		return diagnosis.TimeWaitStep{Time: at + uint64(held), Op: op, Old: old, New: neu, Cookie: 77, Owner: cli,
			Known: true, Dest: dest, Sport: 40001, Held: held}
	}
	s := []diagnosis.TimeWaitStep{
		step(events.TwMove, events.FinWait2, events.TimeWait, 300*time.Millisecond),
		step(events.TwMove, events.TimeWait, events.TimeWait, 1200*time.Millisecond),
		step(events.TwExpire, events.TimeWait, events.Close, 61200*time.Millisecond),
		step(events.TwKill, events.TimeWait, events.Close, 3200*time.Millisecond),
		step(events.TwReuse, events.TimeWait, events.Close, 1500*time.Millisecond),
		step(events.TwExpire, events.FinWait2, events.Close, 60*time.Second),
	}
	s[3].Cookie, s[3].Dest, s[3].Sport = 78, v6, 51234
	s[4].Cookie, s[4].Sport = 79, 40002
	s[5].Cookie, s[5].Sport = 80, 40003
	found := step(events.TwExpire, events.TimeWait, events.Close, 41250*time.Millisecond)
	found.Cookie, found.Owner, found.Known = 1<<40, hint, false
	gone := step(events.TwKill, events.TimeWait, events.Close, 2*time.Second)
	gone.Cookie, gone.Owner, gone.Known, gone.Dest, gone.Sport = 1<<40+1, diagnosis.ProcKey{}, false, srv, 8080
	return append(s, found, gone,
		diagnosis.TimeWaitStep{Time: at, Op: events.TwStart, Old: events.FinWait2, New: events.TimeWait, Known: true}, // not shown
		diagnosis.TimeWaitStep{Time: at, Op: events.TwFound, New: events.TimeWait})                                    // not shown
}

// TestTimeWaitStepsGolden: one line per step, text and JSON.
func TestTimeWaitStepsGolden(t *testing.T) {
	steps := timeWaitSteps()
	for _, c := range []struct {
		name   string
		o      style.Options
		asJSON bool
	}{
		{"timewait.steps.text.golden", style.Options{Clock: rendertest.Clock}, false},
		{"timewait.steps.ascii.golden", style.Options{Clock: rendertest.Clock, ASCII: true}, false},
		{"timewait.steps.json.golden", style.Options{Clock: rendertest.Clock}, true},
	} {
		var b bytes.Buffer
		v := NewWarnings(&b, c.o, c.asJSON)
		for i := range steps {
			v.TimeWait(&steps[i])
		}
		if err := v.Err(); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(b.String(), "\n"); n != len(steps)-2 {
			t.Errorf("%s: %d lines for %d steps shown", c.name, n, len(steps)-2)
		}
		if c.asJSON {
			rendertest.CheckJSONLines(t, b.Bytes())
		}
		rendertest.Golden(t, c.name, b.Bytes())
	}
}

// TestTimeWaitStepJSON checks the members each kind of line carries.
func TestTimeWaitStepJSON(t *testing.T) {
	steps := timeWaitSteps()
	var b bytes.Buffer
	v := NewWarnings(&b, style.Options{Clock: rendertest.Clock}, true)
	for i := range steps[:8] {
		v.TimeWait(&steps[i])
	}
	var got []TimeWaitJSON
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var j TimeWaitJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatal(err)
		}
		got = append(got, j)
	}
	want := []struct{ typ, cause, state, old, neu string }{
		{"time_wait_move", "", "", "FIN_WAIT2", "TIME_WAIT"},
		{"time_wait_move", "", "", "TIME_WAIT", "TIME_WAIT"},
		{"time_wait_end", "expire", "TIME_WAIT", "", ""},
		{"time_wait_end", "kill", "TIME_WAIT", "", ""},
		{"time_wait_end", "reuse", "TIME_WAIT", "", ""},
		{"time_wait_end", "expire", "FIN_WAIT2", "", ""},
		{"time_wait_end", "expire", "TIME_WAIT", "", ""},
		{"time_wait_end", "kill", "TIME_WAIT", "", ""},
	}
	for i, w := range want {
		j := got[i]
		if j.Type != w.typ || j.Cause != w.cause || j.State != w.state || j.Old != w.old || j.New != w.neu {
			t.Errorf("line %d: %+v, want %+v", i, j, w)
		}
	}
	if !got[1].Restarted || got[0].Restarted {
		t.Errorf("restarted: %v %v", got[0].Restarted, got[1].Restarted)
	}
	if p := got[6]; p.OwnerKnown || p.PID != 0 || p.Comm != "" || p.HintPID != 1234 || p.HintComm != "redis-cli" {
		t.Errorf("predating with a hint: %+v", p)
	}
	if p := got[0]; !p.OwnerKnown || p.PID != 4242 || p.HintPID != 0 {
		t.Errorf("known owner: %+v", p)
	}
}

// timeWaitReport is a report where TIME_WAIT predates tracing (with and
// without a hint), orphaned FIN_WAIT2 are held, and each namespace's count
// comes from a different method.
func timeWaitReport() *diagnosis.Report {
	cli := diagnosis.ProcKey{PID: 4242, Comm: events.MakeComm("python3")}
	dest := diagnosis.Dest{Netns: 4026532177, Saddr: netip.MustParseAddr("10.201.1.1"),
		Daddr: netip.MustParseAddr("10.201.1.2"), Dport: 8080}
	redis := diagnosis.Dest{Netns: 4026531840, Saddr: netip.MustParseAddr("127.0.0.1"),
		Daddr: netip.MustParseAddr("127.0.0.1"), Dport: 6379}
	srv := diagnosis.Dest{Netns: 4026532240, Saddr: netip.MustParseAddr("10.201.1.2"), Lport: 8080}
	s := diagnosis.Sysctls{PortLo: 40000, PortHi: 40063, TwReuse: 0, Timestamps: 1, MaxTwBuckets: 131072,
		ReuseDelay: time.Second, Known: true}
	return &diagnosis.Report{
		Elapsed: 12 * time.Second,
		TimeWait: []diagnosis.TimeWaitRow{
			{Dest: redis, Known: false, Hint: diagnosis.ProcKey{PID: 1234, Comm: events.MakeComm("redis-cli")}, Count: 40000},
			{Dest: dest, Owner: cli, Known: true, Count: 12, FinWait2: 3},
			{Dest: srv, Count: 3, FinWait2: 1},
		},
		Namespaces: []diagnosis.NetnsRow{
			{Netns: 4026531840, Sysctls: diagnosis.DefaultSysctls, From: "live", TimeWait: 40000, Unknown: 40000, Method: diagnosis.MethodTable},
			{Netns: 4026532177, Sysctls: s, From: "live", TimeWait: 12, FinWait2: 3, Method: diagnosis.MethodEvents},
			{Netns: 4026532240, Sysctls: diagnosis.DefaultSysctls, From: "capture", TimeWait: 3, FinWait2: 1, Unknown: 4, Method: diagnosis.MethodHandovers},
			{Netns: 4026532300, Sysctls: diagnosis.DefaultSysctls, From: "default", TimeWait: -1, Err: "no such namespace"},
		},
	}
}

func TestTimeWaitReportGolden(t *testing.T) {
	r := timeWaitReport()
	var b bytes.Buffer
	for _, w := range []int{80, 120} {
		b.Reset()
		if err := WriteText(&b, style.Options{Clock: rendertest.Clock, Width: w}, Options{Title: "tcptrace diagnosis", Short: true}, r); err != nil {
			t.Fatal(err)
		}
		rendertest.CheckWidth(t, b.String(), w)
		rendertest.Golden(t, "timewait.report"+strconv.Itoa(w)+".golden", b.Bytes())
	}
	// In a pipe a row stays on one line: grep finds the destination with its owner.
	b.Reset()
	if err := WriteText(&b, style.Options{Clock: rendertest.Clock, Width: 80, Pipe: true}, Options{Title: "tcptrace diagnosis", Short: true}, r); err != nil {
		t.Fatal(err)
	}
	rendertest.CheckWidth(t, b.String(), 80)
	if !strings.Contains(b.String(), "│ 127.0.0.1:6379         │ predates tracing (hint: redis-cli pid 1234) │") {
		t.Errorf("in a pipe a row wraps:\n%s", b.String())
	}
	rendertest.Golden(t, "timewait.report.pipe80.golden", b.Bytes())
	b.Reset()
	if err := WriteJSON(&b, rendertest.Clock, r); err != nil {
		t.Fatal(err)
	}
	rendertest.Golden(t, "timewait.report.json.golden", b.Bytes())
	var j struct {
		TimeWait []map[string]any `json:"time_wait_by_destination"`
		Netns    []map[string]any `json:"namespaces"`
	}
	if err := json.Unmarshal(b.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if h := j.TimeWait[0]; h["hint_pid"] != 1234.0 || h["hint_comm"] != "redis-cli" || h["owner_known"] != false || h["pid"] != 0.0 {
		t.Errorf("predating row: %v", h)
	}
	if _, ok := j.TimeWait[1]["hint_pid"]; ok || j.TimeWait[1]["fin_wait2_sockets"] != 3.0 {
		t.Errorf("known row: %v", j.TimeWait[1])
	}
	if n := j.Netns[2]; n["method"] != diagnosis.MethodHandovers || n["fin_wait2_sockets"] != 1.0 {
		t.Errorf("namespace row: %v", n)
	}
}

// TestSummaryTimeWaitNow: the exit summary counts what the kernel holds
// at the end when the diagnosis knows it, and the handovers besides.
func TestSummaryTimeWaitNow(t *testing.T) {
	s, rep := summarize(t, rendertest.Fixture(t, "timewait"), 83*time.Second)
	if s.TimeWait != 1 || s.FinWait2 != 1 || s.TimeWaitNow != -1 || s.FinWait2Now != -1 {
		t.Fatalf("summary %+v", s)
	}
	s.SetReport(&diagnosis.Report{})
	if s.TimeWaitNow != -1 {
		t.Fatalf("no namespace known: %d", s.TimeWaitNow)
	}
	rep.Namespaces = timeWaitReport().Namespaces
	s.SetReport(rep)
	if s.TimeWaitNow != 40015 || s.FinWait2Now != 4 {
		t.Fatalf("now: %d TIME_WAIT, %d FIN_WAIT2", s.TimeWaitNow, s.FinWait2Now)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b, style.Options{Width: 80}); err != nil {
		t.Fatal(err)
	}
	rendertest.CheckWidth(t, b.String(), 80)
	rendertest.Golden(t, "timewait.summary-now.golden", b.Bytes())
}
