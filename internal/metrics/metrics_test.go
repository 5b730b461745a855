package metrics

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// values gathers the tcptrace_ metrics as "name{l=v,...}" → value.
func values(t testing.TB, m *Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "tcptrace_") {
			continue
		}
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			out[key] = value(s)
		}
	}
	return out
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	}
	return 0
}

type fakeKernel struct{ l events.Losses }

func (k *fakeKernel) Losses() (events.Losses, error) { return k.l, nil }
func (k *fakeKernel) Buffered() int                  { return 4096 }
func (k *fakeKernel) RingSize() int                  { return 1 << 20 }

func load(t testing.TB, name string) []events.Event {
	t.Helper()
	evs, err := eventstest.LoadJSONL(filepath.Join("..", "events", "testdata", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// The recorded kernel sequences of each close kind, counted.
func TestFixtures(t *testing.T) {
	k := &fakeKernel{l: events.Losses{Ring: 3, Recursion: 2}}
	m := New(Options{Kernel: k, Version: "test", MaxTracked: 100,
		Container: func(c *events.Conn) string { return "ctr" }})
	tr := events.NewTracker(m, nil, 100)
	for _, name := range []string{"client_close", "server_close", "linger_reset", "refused"} {
		for _, ev := range load(t, name) {
			tr.Observe(&ev)
		}
	}
	m.SetTracker(tr.Stats())
	v := values(t, m)
	for key, want := range map[string]float64{
		`tcptrace_connections_finished_total{closer=local,end=graceful}`: 2, // client_close's client, server_close's server
		`tcptrace_connections_finished_total{closer=peer,end=graceful}`:  2,
		`tcptrace_connections_finished_total{closer=none,end=refused}`:   1,
		`tcptrace_connections_finished_total{closer=none,end=reset}`:     2,
		`tcptrace_connect_failures_total{error=ECONNREFUSED}`:            1,
		`tcptrace_transitions_total{from=FIN_WAIT2,to=TIME_WAIT}`:        2,
		`tcptrace_transitions_total{from=SYN_SENT,to=CLOSE}`:             1,
		`tcptrace_kernel_events_lost_total{cause=ring_full}`:             3,
		`tcptrace_kernel_events_lost_total{cause=recursion}`:             2,
		`tcptrace_ring_buffer_used_bytes{}`:                              4096,
		`tcptrace_ring_buffer_size_bytes{}`:                              1 << 20,
		`tcptrace_userspace_drops_total{cause=evicted}`:                  0,
		`tcptrace_tracked_connections_limit{}`:                           100,
		`tcptrace_build_info{version=test}`:                              1,
		`tcptrace_active_closes_total{comm=probe.test,container=ctr}`:    2,
		`tcptrace_events_total{}`:                                        float64(tr.Stats().Events),
		`tcptrace_tracked_connections{}`:                                 float64(tr.Stats().Tracked),
	} {
		if got, ok := v[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if t.Failed() {
		for k, x := range v {
			t.Logf("%s %v", k, x)
		}
	}
}

func TestTopCounter(t *testing.T) {
	c := newTopCounter(2, 100)
	c.add("a", 1, 1)
	c.add("b", 1, 2)
	c.add("c", 5, 3) // table full: other
	c.add("a", 1, 4)
	got := map[string]uint64{}
	c.each(func(k string, n uint64) { got[k] = n })
	if fmt.Sprint(got) != "map[a:2 b:1 other:5]" {
		t.Fatalf("before rotation: %v", got)
	}
	c.add("c", 1, 200) // a new window: c (busier than b) takes b's slot, starting at 0
	clear(got)
	c.each(func(k string, n uint64) { got[k] = n })
	if fmt.Sprint(got) != "map[a:2 c:1 other:5]" {
		t.Fatalf("after rotation: %v", got)
	}
	// Cardinality stays bounded whatever the number of keys.
	for i := 0; i < 100000; i++ {
		c.add(strconv.Itoa(i), 1, 300+uint64(i))
	}
	n := 0
	c.each(func(string, uint64) { n++ })
	if n > 3 || len(c.cand) > maxCandidates {
		t.Errorf("%d series, %d candidates", n, len(c.cand))
	}
}

func TestSetDiagnosis(t *testing.T) {
	m := New(Options{TopK: 2})
	dest := func(port uint16) diagnosis.Dest {
		return diagnosis.Dest{Netns: 7, Daddr: netip.MustParseAddr("10.0.0.1"), Dport: port}
	}
	m.SetDiagnosis(&diagnosis.Report{
		Namespaces: []diagnosis.NetnsRow{{TimeWait: 100, FinWait2: 9}, {TimeWait: -1, FinWait2: 50},
			{Netns: 7, TimeWait: -1, From: "live", Sysctls: diagnosis.Sysctls{PortLo: 40000, PortHi: 40063, MaxTwBuckets: 131072, Known: true}}},
		TimeWait: []diagnosis.TimeWaitRow{{Dest: dest(1), Count: 50, FinWait2: 1}, {Dest: dest(2), Count: 30},
			{Dest: dest(3), Count: 5, FinWait2: 4}, {Dest: diagnosis.Dest{Lport: 80}, Count: 1, FinWait2: 2}},
		Forecasts: []diagnosis.ForecastRow{{Dest: dest(1), Forecast: diagnosis.Forecast{ETA: 30 * time.Second}},
			{Dest: dest(2), Forecast: diagnosis.Forecast{ETA: 10 * time.Second}},
			{Dest: dest(3), Forecast: diagnosis.Forecast{ETA: 40 * time.Second}},
			{Dest: dest(4), Forecast: diagnosis.Forecast{Never: true}}},
	})
	v := values(t, m)
	for key, want := range map[string]float64{
		`tcptrace_time_wait_sockets{destination=10.0.0.1:1,netns=7}`:                50,
		`tcptrace_time_wait_sockets{destination=10.0.0.1:2,netns=7}`:                30,
		`tcptrace_time_wait_sockets{destination=other,netns=other}`:                 20, // the namespace's 100, less those shown
		`tcptrace_orphan_fin_wait2_sockets{destination=10.0.0.1:3,netns=7}`:         4,
		`tcptrace_orphan_fin_wait2_sockets{destination=local:80,netns=0}`:           2,
		`tcptrace_orphan_fin_wait2_sockets{destination=other,netns=other}`:          3, // the known namespace's 9, less those shown
		`tcptrace_port_exhaustion_forecast_seconds{destination=10.0.0.1:2,netns=7}`: 10,
		`tcptrace_port_exhaustion_forecast_seconds{destination=10.0.0.1:1,netns=7}`: 30,
		`tcptrace_port_exhaustion_forecast_seconds{destination=other,netns=other}`:  40,
		`tcptrace_ephemeral_ports{netns=7}`:                                         64,
		`tcptrace_max_tw_buckets{netns=7}`:                                          131072,
	} {
		if got, ok := v[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := v[`tcptrace_orphan_fin_wait2_sockets{destination=10.0.0.1:2,netns=7}`]; ok {
		t.Error("a destination without orphaned FIN_WAIT2 has the gauge")
	}
	if _, ok := v[`tcptrace_port_exhaustion_forecast_seconds{destination=10.0.0.1:4,netns=7}`]; ok {
		t.Error("a destination never exhausted has a forecast")
	}
}

// TestSeriesFromStart: counters are there at 0 before anything happened,
// and the held gauges and the forecast from the first report that knows a
// namespace's TIME_WAIT, with nothing held or at risk.
func TestSeriesFromStart(t *testing.T) {
	m := New(Options{Kernel: &fakeKernel{}})
	v := values(t, m)
	for _, key := range []string{
		`tcptrace_connect_failures_total{error=EADDRNOTAVAIL}`,
		`tcptrace_connect_failures_total{error=ECONNREFUSED}`,
		`tcptrace_connect_failures_total{error=ETIMEDOUT}`,
		`tcptrace_active_closes_total{comm=other,container=other}`,
		`tcptrace_connections_finished_total{closer=local,end=graceful}`,
		`tcptrace_connections_finished_total{closer=none,end=failed}`,
		`tcptrace_transitions_total{from=FIN_WAIT2,to=TIME_WAIT}`,
		`tcptrace_transitions_total{from=SYN_SENT,to=CLOSE}`,
		`tcptrace_transitions_inferred_total{}`,
		`tcptrace_kernel_events_lost_total{cause=ring_full}`,
		`tcptrace_userspace_drops_total{cause=evicted}`,
		`tcptrace_events_total{}`,
		`tcptrace_connections_total{}`,
	} {
		if got, ok := v[key]; !ok || got != 0 {
			t.Errorf("%s = %v (present %v), want 0", key, got, ok)
		}
	}
	if _, ok := v[`tcptrace_connections_finished_total{closer=local,end=open}`]; ok {
		t.Error("a finished connection counted as open")
	}
	for k := range v {
		if strings.HasPrefix(k, "tcptrace_time_wait_sockets") || strings.HasPrefix(k, "tcptrace_port_exhaustion") {
			t.Errorf("%s before any namespace is known", k)
		}
	}
	m.SetDiagnosis(&diagnosis.Report{Namespaces: []diagnosis.NetnsRow{{Netns: 1, TimeWait: 0}}})
	v = values(t, m)
	for key, want := range map[string]float64{
		`tcptrace_time_wait_sockets{destination=other,netns=other}`:                0,
		`tcptrace_orphan_fin_wait2_sockets{destination=other,netns=other}`:         0,
		`tcptrace_port_exhaustion_forecast_seconds{destination=other,netns=other}`: math.Inf(1),
	} {
		if got, ok := v[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
}

// churn feeds n connections of the recorded sequences through the tracker
// and the metrics, each with new cookies, ports and owners.
// Every leakEvery-th round the connections never close (0: all close), so
// the tracked table fills up and evicts.
func churn(tb testing.TB, n, leakEvery int) (*events.Tracker, *Metrics) {
	var seqs [][]events.Event
	for _, name := range []string{"client_close", "server_close", "linger_reset", "refused", "churn"} {
		seqs = append(seqs, load(tb, name))
	}
	m := New(Options{Container: func(*events.Conn) string { return "" }})
	tr := events.NewTracker(m, nil, AgentMaxConns)
	var ev events.Event
	done := 0
	var now uint64
	for round := uint64(0); done < n; round++ {
		for _, seq := range seqs {
			base := seq[0].Time
			for i := range seq {
				ev = seq[i]
				ev.Cookie += round << 32
				ev.Time = now + (ev.Time - base)
				ev.Comm = events.MakeComm("p" + strconv.Itoa(int(round%1000)))
				if leakEvery > 0 && round%uint64(leakEvery) == 0 && ev.New == events.Close {
					done++
					continue
				}
				if ev.New == events.Close {
					done++
				}
				tr.Observe(&ev)
			}
			now = ev.Time + 1000
		}
		if round%64 == 0 {
			m.SetTracker(tr.Stats())
		}
	}
	return tr, m
}

// rss returns the resident set size in bytes, from /proc/self/status.
func rss(tb testing.TB) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// After a million churned connections, with thousands of distinct owners,
// the tracker and metrics hold bounded memory and series.
func TestMemoryChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = 1_000_000
	tr, m := churn(t, n, 4) // a quarter never close: the table fills and evicts
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := rss(t)
	st := tr.Stats()
	series := len(values(t, m))
	t.Logf("%d connections finished, %d evicted, %d events: heap %.1f MiB, RSS %.1f MiB, %d tracked, %d tcptrace_ series",
		st.Finished, st.Evicted, st.Events, float64(ms.HeapInuse)/(1<<20), float64(r)/(1<<20), st.Tracked, series)
	if st.Finished+uint64(st.Tracked)+st.Evicted < n || st.Evicted == 0 {
		t.Errorf("finished %d, tracked %d, evicted %d of %d", st.Finished, st.Tracked, st.Evicted, n)
	}
	if r > 64<<20 {
		t.Errorf("RSS %d MiB after %d connections, want < 64 MiB", r>>20, n)
	}
	if series > 200 {
		t.Errorf("%d series: label cardinality not bounded", series)
	}
}

// BenchmarkChurn measures the tracker and metrics per connection.
func BenchmarkChurn(b *testing.B) {
	b.ReportAllocs()
	churn(b, b.N, 0)
}
