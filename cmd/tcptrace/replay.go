package main

import (
	"fmt"
	"os"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// runReplay renders a capture exactly as the live run that recorded it
// would have, with the same filters and views. It needs no privileges.
func runReplay(f *flags, cf *captureFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	r, wall, err := openReplay(cf.read)
	if err != nil {
		return err
	}
	defer r.Close()
	describeCapture(cf.read, r, wall)
	pl, err := newPipeline(f, wall, nil)
	if err != nil {
		return err
	}
	pl.engine.SetSysctls(captureSysctls(r))
	pl.tracker.SetTimeWaitEvents(r.Header().TimeWaitEvents)
	var last uint64
	track := func(ev *events.Event) error {
		last = ev.Time
		pl.engine.Tick(ev.Time)
		return nil
	}
	runErr := pl.drive(r, track, nil, nil, nil)
	if note := replayNote(cf.read, r); note != "" {
		fmt.Fprintln(os.Stderr, note)
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w (events before it were shown)", cf.read, runErr)
	}
	h := r.Header()
	end := last
	if t := r.Trailer(); t != nil {
		end = t.EndMono
	}
	var elapsed time.Duration
	if end > h.StartMono {
		elapsed = time.Duration(end - h.StartMono)
	}
	pl.report = func() *diagnosis.Report { return pl.engine.Report(max(last, end), elapsed, replayLedgerNote(h)) }
	if err := pl.finish(f, pl.summary(r.Losses(), elapsed)); err != nil {
		return err
	}
	if r.Truncated() != nil {
		return exitError(2)
	}
	return nil
}
