package probe

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Timewait sockets come from three programs on the kernel's timer
// tracepoints, which keep to the timers whose function is tw_timer_handler.
// The kernel reports timer operations; Next pairs them into timewait steps:
//
//	start                       TwStart (a new timewait socket)
//	cancel, start (same cookie) TwMove (re-armed: FIN_WAIT2 got the FIN)
//	cancel, expire              TwExpire
//	cancel alone                TwKill, or TwReuse when connect() took it
//
// A cancel is held until its partner comes, or twPairWindow passes.
//
// The kernel sets a FIN_WAIT2 timewait socket's substate to TIME_WAIT before
// it re-arms the timer, so the cancel already reads TIME_WAIT: which moves
// leave FIN_WAIT2 is known from the sockets that started in it (finWait2).
// maxFinWait2 bounds the FIN_WAIT2 timewait sockets remembered: a lost end
// record leaves one behind.
const maxFinWait2 = 1 << 16

// twPairWindow is how long a cancel waits for its start or expire. Both
// follow it at once on the same CPU (mod_timer; the timer softirq).
const twPairWindow = 2 * time.Millisecond

// kallsymsPath lists the kernel's symbols.
const kallsymsPath = "/proc/kallsyms"

// TwTimerHandler returns tw_timer_handler's address from /proc/kallsyms, 0
// when it is hidden (kptr_restrict) or absent. The kernel formats the file
// as it is read (~120k lines, tens of ms): reading stops at the symbol.
func TwTimerHandler() (uint64, error) {
	f, err := os.Open(kallsymsPath)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", kallsymsPath, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff8205c7b0 t tw_timer_handler"; a module's has a
		// "\t[module]" tail, and tw_timer_handler is not in one.
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte(" tw_timer_handler")) {
			continue
		}
		fields := strings.Fields(string(line))
		if len(fields) != 3 || (fields[1] != "t" && fields[1] != "T") {
			continue
		}
		return strconv.ParseUint(fields[0], 16, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading %s: %w", kallsymsPath, err)
	}
	return 0, nil
}

// timeWaitConfig finds tw_timer_handler for cfg unless opts turn timewait
// events off, and returns the reason to report when there will be none.
func timeWaitConfig(opts Options) (fn uint64, why string) {
	if opts.NoTimeWait {
		return 0, "turned off"
	}
	fn, err := TwTimerHandler()
	switch {
	case err != nil:
		return 0, err.Error()
	case fn == 0:
		return 0, "tw_timer_handler not in " + kallsymsPath + ": kptr_restrict?"
	}
	return fn, ""
}

// attachTimeWait attaches the timewait programs; on failure it detaches
// those attached and returns why.
func (p *Probe) attachTimeWait() error {
	for _, prog := range p.timerPrograms() {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			for _, l := range p.twLinks {
				l.Close()
			}
			p.twLinks = nil
			return fmt.Errorf("attaching %s: %w", prog, err)
		}
		p.twLinks = append(p.twLinks, l)
	}
	return nil
}

func (p *Probe) timerPrograms() []*ebpf.Program {
	return []*ebpf.Program{p.objs.TwTimerStart, p.objs.TwTimerCancel, p.objs.TwTimerExpire}
}

// TimeWaitEvents reports whether the stream carries timewait sockets
// (events.KindTimeWait).
func (p *Probe) TimeWaitEvents() bool { return len(p.twLinks) > 0 }

// TimeWaitMethod says in one line how timewait sockets are known, for the
// start-up line.
func (p *Probe) TimeWaitMethod() string {
	if p.TimeWaitEvents() {
		return "timewait sockets from the kernel's timer tracepoints"
	}
	return "no timewait events (" + p.twWhy + "); TIME_WAIT inferred from closes"
}

// TimerStats returns the timer programs' run count and total run time in
// the kernel, summed (counted while kernel.bpf_stats_enabled is on). Each
// runs for every kernel timer armed, cancelled or run on the host.
func (p *Probe) TimerStats() (runs uint64, runtime time.Duration, err error) {
	for _, prog := range p.timerPrograms() {
		st, err := prog.Stats()
		if err != nil {
			return 0, 0, fmt.Errorf("reading timer program stats: %w", err)
		}
		runs += st.RunCount
		runtime += st.Runtime
	}
	return runs, runtime, nil
}

// recursionMisses sums the programs' recursion misses.
func (p *Probe) recursionMisses() (uint64, error) {
	var n uint64
	for _, prog := range append(p.timerPrograms(), p.objs.InetSockSetState) {
		st, err := prog.Stats()
		if err != nil {
			return 0, fmt.Errorf("reading program stats: %w", err)
		}
		n += st.RecursionMisses
	}
	return n, nil
}

// order pairs timewait records as they are read. It returns true when ev
// is ready to return as is; otherwise ev was held (a cancel) or queued in
// p.pending behind the held cancels it resolved, which come first.
func (p *Probe) order(ev *events.Event) bool {
	if len(p.held) == 0 && ev.Kind != events.KindTimeWait {
		return true
	}
	p.resolveHeld(ev.Time)
	if ev.Kind == events.KindTimeWait && p.pair(ev) {
		return false
	}
	if len(p.pending) == 0 {
		return true
	}
	p.pending = append(p.pending, *ev)
	return false
}

// pair matches a timewait record with a held cancel of the same socket. It
// returns true when ev is a cancel, now held.
func (p *Probe) pair(ev *events.Event) bool {
	i := 0
	for i < len(p.held) && p.held[i].Cookie != ev.Cookie {
		i++
	}
	if ev.TwOp == events.TwKill || ev.TwOp == events.TwReuse {
		if i < len(p.held) {
			// A second cancel of the same socket: the first was a kill.
			p.noteSubstate(&p.held[i])
			p.pending = append(p.pending, p.held[i])
			p.held = append(p.held[:i], p.held[i+1:]...)
		}
		p.held = append(p.held, *ev)
		return true
	}
	if i < len(p.held) {
		if ev.TwOp == events.TwStart {
			// Re-armed: FIN_WAIT2 -> TIME_WAIT, or TIME_WAIT restarted.
			ev.TwOp, ev.Old = events.TwMove, p.held[i].Old
			if p.finWait2[ev.Cookie] {
				ev.Old = events.FinWait2
			}
		}
		p.held = append(p.held[:i], p.held[i+1:]...)
	}
	p.noteSubstate(ev)
	return false
}

// noteSubstate remembers which timewait sockets are in FIN_WAIT2.
func (p *Probe) noteSubstate(ev *events.Event) {
	if ev.New == events.FinWait2 && (ev.TwOp == events.TwStart || ev.TwOp == events.TwMove) {
		if len(p.finWait2) >= maxFinWait2 {
			clear(p.finWait2)
		}
		p.finWait2[ev.Cookie] = true
		return
	}
	if len(p.finWait2) > 0 {
		delete(p.finWait2, ev.Cookie)
	}
}

// resolveHeld queues, as kills, the held cancels older than twPairWindow at
// time now (ns, CLOCK_MONOTONIC). They are held in the order they came, so
// only a prefix can be due: per event this looks at one cancel, not all.
func (p *Probe) resolveHeld(now uint64) {
	n := 0
	for ; n < len(p.held); n++ {
		c := &p.held[n]
		if now <= c.Time || now-c.Time <= uint64(twPairWindow) {
			break
		}
		p.noteSubstate(c)
		p.pending = append(p.pending, *c)
	}
	if n > 0 {
		p.held = p.held[:copy(p.held, p.held[n:])]
	}
}

// resolveAll queues every held cancel as a kill: at Stop.
func (p *Probe) resolveAll() {
	for i := range p.held {
		p.noteSubstate(&p.held[i])
	}
	p.pending = append(p.pending, p.held...)
	p.held = p.held[:0]
}

// popPending moves the first queued event to ev.
func (p *Probe) popPending(ev *events.Event) bool {
	if len(p.pending) == 0 {
		return false
	}
	*ev = p.pending[0]
	p.pending = p.pending[1:]
	return true
}
