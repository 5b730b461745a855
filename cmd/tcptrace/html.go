package main

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/render/report"
)

// newShapes adds a ladder collector to cfg's sinks (connections filtered
// as the diagnosis is, and by pass when not nil) and returns it; attach it
// to the pipeline made from cfg. Unless wanted it does nothing: nil.
// Pairing every connection of a churning host costs more than a view that
// shows a few ladders: live views pass only what they show.
func newShapes(cfg *pipeline.Config, wanted bool, pass func(*events.Conn) bool) *ladder.Collector {
	if !wanted {
		return nil
	}
	c := ladder.NewCollector()
	var sink events.Sink = c
	if pass != nil {
		sink = &events.Gate{Sink: c, Pass: pass}
	}
	cfg.Sinks = append(cfg.Sinks, &events.Filtered{Filter: connOnly(cfg.Filter), Sink: sink})
	return c
}

// attachShapes drives c from p: the overdue partners at each tick, what is
// still pending at the end.
func attachShapes(c *ladder.Collector, p *pipeline.Pipeline) {
	if c == nil {
		return
	}
	p.Every(0, c.Tick)
	p.AtEnd(c.Flush)
}

// htmlInput returns the HTML report's input for rep from p and the shapes
// c collected; the caller sets where it comes from.
func htmlInput(c *ladder.Collector, p *pipeline.Pipeline, rep *diagnosis.Report, wall wallClock) *report.HTMLInput {
	return &report.HTMLInput{Title: "tcptrace report", Version: version, Wall: wall.Time(rep.End),
		Shapes: &c.Agg, Stats: p.Stats(), Lost: p.Losses()}
}

// thisHost returns the host name and the kernel release, for a live report.
func thisHost() (host, kernel string) {
	host, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	return host, kernel
}

// htmlFile is the --html destination, created before tracing starts so
// that a path that cannot be written fails at once.
type htmlFile struct {
	path string
	f    *os.File
}

// createHTML opens path for the HTML report ("-": standard output).
func createHTML(path string) (*htmlFile, error) {
	if path == "-" {
		return &htmlFile{path: path, f: os.Stdout}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, flagError("--html", err)
	}
	return &htmlFile{path: path, f: f}, nil
}

// write renders the page into the file and closes it.
func (h *htmlFile) write(in *report.HTMLInput, rep *diagnosis.Report) error {
	var b bytes.Buffer
	if err := report.WriteHTML(&b, in, rep); err != nil {
		return err
	}
	_, err := h.f.Write(b.Bytes())
	if h.f != os.Stdout {
		if cerr := h.f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			fmt.Fprintf(os.Stderr, "tcptrace: wrote the HTML report to %s\n", h.path)
		}
	}
	if err != nil {
		return fmt.Errorf("writing the HTML report: %w", err)
	}
	return nil
}
