package render

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
)

// Warnings shows what the diagnosis finds in the stream: forecast and churn
// warnings, failed connects and the later steps of timewait sockets (moves
// to TIME_WAIT, ends), as text lines or JSON objects. It implements
// diagnosis.Reporter.
type Warnings struct {
	w    io.Writer
	o    Options
	json bool
	st   *styles
	err  error
}

// NewWarnings returns the stream's diagnosis view: JSON lines when asJSON.
func NewWarnings(w io.Writer, o Options, asJSON bool) *Warnings {
	return &Warnings{w: w, o: o, json: asJSON, st: newStyles(w, o.Color)}
}

// Err returns the first write error, if any.
func (v *Warnings) Err() error { return v.err }

func (v *Warnings) write(s string) {
	if v.err == nil {
		_, v.err = io.WriteString(v.w, s)
	}
}

func (v *Warnings) writeJSON(x any) {
	b, err := json.Marshal(x)
	if err != nil {
		v.err = fmt.Errorf("encode warning: %w", err)
		return
	}
	v.write(string(b) + "\n")
}

// WarningJSON is a {"type":"warning"} line.
type WarningJSON struct {
	Type       string   `json:"type"`
	Time       string   `json:"time"`
	Kind       string   `json:"kind"`
	Netns      uint32   `json:"netns"`
	Saddr      string   `json:"saddr"`
	Daddr      string   `json:"daddr"`
	Dport      uint16   `json:"dport"`
	PID        uint32   `json:"pid"`
	Comm       string   `json:"comm"`
	Rate       float64  `json:"rate_per_s"`
	TimeWait   int      `json:"time_wait"`
	Ports      int      `json:"ports"`
	PortsLeft  int      `json:"ports_left"`
	Seconds    *float64 `json:"seconds_to_exhaustion"`
	HoldS      float64  `json:"hold_s"`
	PortRange  string   `json:"ip_local_port_range"`
	TwReuse    int      `json:"tcp_tw_reuse"`
	Timestamps int      `json:"tcp_timestamps"`
	MaxTw      int      `json:"tcp_max_tw_buckets"`
	Failed     uint64   `json:"failed_connects"`
	LifetimeUs float64  `json:"short_life_us,omitempty"`
	Remedies   []string `json:"remedies,omitempty"`
}

// Warning shows a forecast or churn warning.
func (v *Warnings) Warning(w *diagnosis.Warning) {
	if w == nil {
		return
	}
	f, s := &w.Forecast, &w.Sysctls
	if v.json {
		j := WarningJSON{Type: "warning", Time: v.o.Clock.Wall(w.Time).Format(time.RFC3339Nano), Kind: w.Kind,
			Netns: w.Dest.Netns, Saddr: addrText(w.Dest.Saddr), Daddr: addrText(w.Dest.Daddr), Dport: w.Dest.Dport,
			PID: w.Owner.PID, Comm: sanitize(w.Owner.Comm.String()), Rate: round2(w.Rate), TimeWait: w.Held,
			Ports: f.Ports, PortsLeft: f.Left, HoldS: f.Hold.Seconds(),
			PortRange: strconv.Itoa(s.PortLo) + " " + strconv.Itoa(s.PortHi), TwReuse: s.TwReuse,
			Timestamps: s.Timestamps, MaxTw: s.MaxTwBuckets, Failed: w.Failed, Remedies: diagnosis.Remedies}
		if !f.Never {
			sec := round2(f.ETA.Seconds())
			j.Seconds = &sec
		}
		if w.Kind == diagnosis.KindChurn {
			j.LifetimeUs = float64(w.Lifetime.Microseconds())
		}
		v.writeJSON(j)
		return
	}
	who := procText(w.Owner) + " " + arrow(v.o) + " " + endpoint(w.Dest.Daddr, w.Dest.Dport)
	var lines []string
	if w.Kind == diagnosis.KindChurn {
		lines = append(lines, fmt.Sprintf("!! connection churn: %s: %.1f connects/s, each shorter than %v", who, w.Rate, w.Lifetime),
			fmt.Sprintf("   %d TIME_WAIT held, %d of %d ports left; %s", w.Held, f.Left, f.Ports, etaText(f)))
	} else {
		lines = append(lines, fmt.Sprintf("!! ports toward %s run out %s", endpoint(w.Dest.Daddr, w.Dest.Dport), etaText(f)),
			fmt.Sprintf("   %s is the active closer: %.1f new TIME_WAIT/s, %d held %s each, %d of %d ports left",
				procText(w.Owner), w.Rate, w.Held, holdText(f.Hold), f.Left, f.Ports),
			fmt.Sprintf("   netns %d from %s: ip_local_port_range %d %d, tcp_tw_reuse %d, tcp_timestamps %d, tcp_max_tw_buckets %d",
				w.Dest.Netns, addrText(w.Dest.Saddr), s.PortLo, s.PortHi, s.TwReuse, s.Timestamps, s.MaxTwBuckets))
	}
	lines = append(lines, "   remedies, safest first:")
	for i, r := range diagnosis.Remedies {
		lines = append(lines, "     "+strconv.Itoa(i+1)+". "+r)
	}
	head := v.st.paint(v.st.loss, lines[0])
	v.write(v.stamp(w.Time) + head + "\n" + strings.Join(lines[1:], "\n") + "\n")
}

// Failed shows connects that failed since the last notice (text only: in
// JSON they are the connection records with "end":"failed").
func (v *Warnings) Failed(f *diagnosis.FailedNotice) {
	if f == nil || v.json {
		return
	}
	msg := fmt.Sprintf("!! connect() failed %s ×%d: %s %s %s (%d so far)", errnoText(f.Err), f.New,
		procText(f.Owner), arrow(v.o), endpoint(f.Dest.Daddr, f.Dest.Dport), f.Total)
	v.write(v.stamp(f.Time) + v.st.paint(v.st.loss, msg) + "\n")
}

func (v *Warnings) stamp(mono uint64) string {
	return v.st.paint(v.st.faint, v.o.Clock.Wall(mono).Format("15:04:05.000000")) + " "
}

func procText(k diagnosis.ProcKey) string {
	c := sanitize(k.Comm.String())
	if k.PID == 0 && c == "" {
		return "?"
	}
	return c + " (" + strconv.FormatUint(uint64(k.PID), 10) + ")"
}

func destText(d diagnosis.Dest) string {
	if d.Lport != 0 {
		return "clients of local :" + strconv.Itoa(int(d.Lport))
	}
	return endpoint(d.Daddr, d.Dport)
}

func etaText(f *diagnosis.Forecast) string {
	switch {
	case f.Never && f.Capped:
		return "never (tcp_max_tw_buckets caps TIME_WAIT first)"
	case f.Never:
		return "never at this rate"
	case f.ETA <= 0:
		return "now: connect() fails"
	}
	return "in " + strconv.FormatFloat(f.ETA.Seconds(), 'f', 1, 64) + "s"
}

func errnoText(e uint16) string {
	if n := diagnosis.ErrName(e); n != "" {
		return n
	}
	return "(no error)"
}

func arrow(o Options) string {
	if o.ASCII {
		return "->"
	}
	return "→"
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// holdText formats a hold time in seconds ("60s", "1s").
func holdText(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }
