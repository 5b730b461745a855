package main

import (
	"fmt"
	"os"

	"github.com/tcptrace/tcptrace/internal/pipeline"
)

// runReplay renders a capture exactly as the live run that recorded it
// would have, with the same filters and views. It needs no privileges.
func runReplay(f *flags, cf *captureFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	_, uf, err := f.filter()
	if err != nil {
		return err
	}
	cont, err := f.containerFilter(false)
	if err != nil {
		return err
	}
	src, err := openReplay(cf.read)
	if err != nil {
		return err
	}
	defer src.Close()
	r := src.Capture()
	v, err := newViews(f, uf, replayClock(r.Header()), nil, false)
	if err != nil {
		return err
	}
	describeCapture(cf.read, r)
	p := pipeline.New(src, pipeline.Config{Filter: uf, Containers: cont, MaxConns: f.maxConns,
		Diagnosis: v.warnings(diag.options()), Sinks: v.sinks, Out: v.out})
	v.attach(p)
	runErr := p.Run()
	if note := replayNote(cf.read, r); note != "" {
		fmt.Fprintln(os.Stderr, note)
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w (events before it were shown)", captureName(cf.read), runErr)
	}
	if err := v.finish(f, p, nil); err != nil {
		return err
	}
	if r.Truncated() != nil {
		return exitError(2)
	}
	return nil
}
