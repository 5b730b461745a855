package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// maxJSONRows bounds the namespaces and warnings listed in the report line.
const maxJSONRows = 50

type jsonDest struct {
	Netns uint32 `json:"netns"`
	Saddr string `json:"saddr"`
	Daddr string `json:"daddr,omitempty"`
	Dport uint16 `json:"dport,omitempty"`
	Lport uint16 `json:"lport,omitempty"` // server side: TIME_WAIT on this local port
}

func destJSON(d diagnosis.Dest) jsonDest {
	return jsonDest{d.Netns, style.Addr(d.Saddr), style.Addr(d.Daddr), d.Dport, d.Lport}
}

// destCount is a destination with the connections closed first toward it.
type destCount struct {
	jsonDest
	Count uint64 `json:"count"`
}

func destCounts(ds []diagnosis.DestCount) []destCount {
	out := make([]destCount, 0, len(ds))
	for _, d := range ds {
		out = append(out, destCount{destJSON(d.Dest), d.Count})
	}
	return out
}

type jsonPercentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	Max   float64 `json:"max_us"`
}

func percJSON(p diagnosis.Percentiles) jsonPercentiles {
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return jsonPercentiles{p.Count, us(p.P50), us(p.P90), us(p.P99), us(p.Max)}
}

// WriteJSON writes the report as one {"type":"report"} line.
func WriteJSON(w io.Writer, c clock.Wall, r *diagnosis.Report) error {
	if r == nil {
		r = &diagnosis.Report{}
	}
	type closer struct {
		PID          uint32      `json:"pid"`
		Comm         string      `json:"comm"`
		ActiveCloses uint64      `json:"active_closes"`
		Established  uint64      `json:"established"`
		Failed       uint64      `json:"failed_connects"`
		Finished     uint64      `json:"finished"`
		Dests        []destCount `json:"destinations"`
	}
	type tw struct {
		jsonDest
		PID      uint32 `json:"pid"`
		Comm     string `json:"comm"`
		Known    bool   `json:"owner_known"`
		HintPID  uint32 `json:"hint_pid,omitempty"` // not known: a process holding sockets toward the destination now
		HintComm string `json:"hint_comm,omitempty"`
		Count    int    `json:"time_wait_sockets"`
		FinWait2 int    `json:"fin_wait2_sockets"` // orphaned FIN_WAIT2 held by timewait sockets
	}
	type failed struct {
		jsonDest
		PID   uint32 `json:"pid"`
		Comm  string `json:"comm"`
		Err   string `json:"err"`
		Count uint64 `json:"count"`
	}
	type forecast struct {
		jsonDest
		PID       uint32   `json:"pid"`
		Comm      string   `json:"comm"`
		Rate      float64  `json:"rate_per_s"`
		Held      int      `json:"time_wait_sockets"`
		InUse     int      `json:"in_use"`
		Ports     int      `json:"ports"`
		Left      int      `json:"ports_left"`
		HoldS     float64  `json:"hold_s"`
		Reuse     bool     `json:"tw_reuse_applies"`
		Capped    bool     `json:"capped_by_max_tw_buckets"`
		Seconds   *float64 `json:"seconds_to_exhaustion"`
		Failed    uint64   `json:"failed_connects"`
		PortRange [2]int   `json:"ip_local_port_range"`
	}
	type netns struct {
		Netns      uint32 `json:"netns"`
		PortRange  [2]int `json:"ip_local_port_range"`
		TwReuse    int    `json:"tcp_tw_reuse"`
		Timestamps int    `json:"tcp_timestamps"`
		MaxTw      int    `json:"tcp_max_tw_buckets"`
		From       string `json:"sysctls_from"`
		TimeWait   int    `json:"time_wait_sockets"` // -1: unknown
		FinWait2   int    `json:"fin_wait2_sockets"`
		Unknown    int    `json:"unknown_owner"` // of both, predating tracing
		Method     string `json:"method"`        // how they are known: "events", "events+table" or "handovers"
		Err        string `json:"err,omitempty"`
	}
	type state struct {
		State string `json:"state"`
		jsonPercentiles
	}
	out := struct {
		Type       string            `json:"type"`
		ElapsedS   float64           `json:"elapsed_s"`
		LedgerNote string            `json:"ledger_note,omitempty"`
		Closers    []closer          `json:"active_closers"`
		TimeWait   []tw              `json:"time_wait_by_destination"`
		Failed     []failed          `json:"failed_connects_by_destination"`
		Ends       map[string]uint64 `json:"ends"`
		Lifetime   jsonPercentiles   `json:"lifetime"`
		States     []state           `json:"time_in_state"`
		Forecasts  []forecast        `json:"forecast"`
		Netns      []netns           `json:"namespaces"`
		Warnings   []WarningJSON     `json:"warnings"`
		Timelines  []TimelineJSON    `json:"timelines"`
		TWEnded    uint64            `json:"time_wait_ended"`
	}{Timelines: Timelines(r), Type: "report", ElapsedS: r.Elapsed.Seconds(), LedgerNote: r.LedgerNote, Ends: map[string]uint64{},
		Lifetime: percJSON(r.Lifetime), TWEnded: r.TWEnded, Closers: []closer{}, TimeWait: []tw{}, Failed: []failed{},
		States: []state{}, Forecasts: []forecast{}, Netns: []netns{}, Warnings: []WarningJSON{}}
	for _, x := range r.Closers {
		out.Closers = append(out.Closers, closer{PID: x.Owner.PID, Comm: style.Sanitize(x.Owner.Comm.String()),
			ActiveCloses: x.ActiveCloses, Established: x.Established, Failed: x.FailedConnects, Finished: x.Finished,
			Dests: destCounts(x.Dests)})
	}
	for _, x := range r.TimeWait {
		row := tw{jsonDest: destJSON(x.Dest), PID: x.Owner.PID, Comm: style.Sanitize(x.Owner.Comm.String()), Known: x.Known,
			Count: x.Count, FinWait2: x.FinWait2}
		if !x.Known {
			row.HintPID, row.HintComm = x.Hint.PID, style.Sanitize(x.Hint.Comm.String())
		}
		out.TimeWait = append(out.TimeWait, row)
	}
	for _, x := range r.Failed {
		out.Failed = append(out.Failed, failed{destJSON(x.Dest), x.Owner.PID, style.Sanitize(x.Owner.Comm.String()), x.Err, x.Count})
	}
	for _, e := range r.Ends {
		out.Ends[e.End] = e.Count
	}
	for _, s := range r.States {
		out.States = append(out.States, state{s.State, percJSON(s.Time)})
	}
	for _, f := range r.Forecasts {
		s := f.Inputs.Sysctls
		fc := forecast{jsonDest: destJSON(f.Dest), PID: f.Owner.PID, Comm: style.Sanitize(f.Owner.Comm.String()),
			Rate: round2(f.Inputs.Rate), Held: f.Inputs.Held, InUse: f.Inputs.InUse, Ports: f.Forecast.Ports,
			Left: f.Forecast.Left, HoldS: f.Forecast.Hold.Seconds(), Reuse: f.Forecast.Reuse, Capped: f.Forecast.Capped,
			Failed: f.Failed, PortRange: [2]int{s.PortLo, s.PortHi}}
		if !f.Forecast.Never {
			sec := round2(f.Forecast.ETA.Seconds())
			fc.Seconds = &sec
		}
		out.Forecasts = append(out.Forecasts, fc)
	}
	for _, n := range r.Namespaces[:min(len(r.Namespaces), maxJSONRows)] {
		s := n.Sysctls
		out.Netns = append(out.Netns, netns{n.Netns, [2]int{s.PortLo, s.PortHi}, s.TwReuse, s.Timestamps,
			s.MaxTwBuckets, n.From, n.TimeWait, n.FinWait2, n.Unknown, n.Method, n.Err})
	}
	for i := range r.Warnings[:min(len(r.Warnings), maxJSONRows)] {
		out.Warnings = append(out.Warnings, warningJSON(&r.Warnings[i], c))
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
