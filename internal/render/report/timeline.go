package report

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// TimelineJSON is a destination's timeline in the JSON report: what the
// HTML report's charts draw.
type TimelineJSON struct {
	jsonDest
	PID          uint32      `json:"pid"`
	Comm         string      `json:"comm"`
	PortRange    [2]int      `json:"ip_local_port_range"`
	Ports        int         `json:"ports"`
	MaxTwBuckets int         `json:"tcp_max_tw_buckets"`
	StepS        float64     `json:"step_s"`
	Failed       uint64      `json:"failed_connects"`
	Peak         int         `json:"peak_time_wait"`
	Points       []PointJSON `json:"points"`
	Worst        *WhatIfJSON `json:"worst,omitempty"`
	dest         diagnosis.Dest
	owner        diagnosis.ProcKey
	worst        diagnosis.WhatIf
}

// PointJSON is one step of a timeline; T is seconds since the report's start.
type PointJSON struct {
	T        float64  `json:"t_s"`
	TimeWait int      `json:"time_wait_sockets"`
	Rate     float64  `json:"connects_per_s"`
	Failed   uint64   `json:"failed_connects"`
	ETA      *float64 `json:"seconds_to_exhaustion"` // null: never at that rate
}

// WhatIfJSON is the forecast at a destination's worst moment and with each
// remedy; a null forecast means never.
type WhatIfJSON struct {
	T         float64  `json:"t_s"`
	Held      int      `json:"time_wait_sockets"`
	Rate      float64  `json:"rate_per_s"`
	ETA       *float64 `json:"seconds_to_exhaustion"`
	Reuse     *float64 `json:"with_tw_reuse"`
	WideRange *float64 `json:"with_wide_port_range"`
	Pooled    *float64 `json:"without_new_time_wait"`
}

// Timelines returns r's timelines as the JSON report gives them.
func Timelines(r *diagnosis.Report) []TimelineJSON {
	start := r.End - min(uint64(r.Elapsed), r.End)
	rel := func(t uint64) float64 { return round3(time.Duration(t - min(t, start)).Seconds()) }
	out := []TimelineJSON{}
	for _, t := range r.Timelines {
		s := t.Sysctls
		j := TimelineJSON{jsonDest: destJSON(t.Dest), PID: t.Owner.PID, Comm: style.Sanitize(t.Owner.Comm.String()),
			PortRange: [2]int{s.PortLo, s.PortHi}, Ports: s.Ports(), MaxTwBuckets: s.MaxTwBuckets,
			StepS: t.Step.Seconds(), Failed: t.Failed, Peak: t.Peak, Points: make([]PointJSON, 0, len(t.Points)),
			dest: t.Dest, owner: t.Owner, worst: t.Worst}
		for _, p := range t.Points {
			pj := PointJSON{T: rel(p.T), TimeWait: p.TimeWait, Rate: round2(float64(p.Connects) / max(p.Dur.Seconds(), t.Step.Seconds())),
				Failed: p.Failed}
			if p.ETA >= 0 {
				pj.ETA = seconds(diagnosis.Forecast{ETA: p.ETA})
			}
			j.Points = append(j.Points, pj)
		}
		if w := t.Worst; w.T != 0 {
			j.Worst = &WhatIfJSON{T: rel(w.T), Held: w.Inputs.Held, Rate: round2(w.Inputs.Rate), ETA: seconds(w.Forecast),
				Reuse: seconds(w.Reuse), WideRange: seconds(w.WideRange), Pooled: seconds(w.Pooled)}
		}
		out = append(out, j)
	}
	return out
}

// seconds returns f's time to exhaustion in seconds, nil for never.
func seconds(f diagnosis.Forecast) *float64 {
	if f.Never {
		return nil
	}
	s := round2(f.ETA.Seconds())
	return &s
}

// round3 rounds to milliseconds.
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
