package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// diagFlags tune the TIME_WAIT diagnosis of live tracing, replay and report.
type diagFlags struct {
	warnWithin time.Duration
	churnRate  float64
	shortLife  time.Duration
}

// diag holds the diagnosis flags (defaults until a command registers them).
var diag = diagFlags{warnWithin: diagnosis.DefaultThreshold,
	churnRate: diagnosis.DefaultChurnRate, shortLife: diagnosis.DefaultShortLife}

func (d *diagFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&d.warnWithin, "warn-within", d.warnWithin, "warn when connect() toward a destination is forecast to fail within this")
	fs.Float64Var(&d.churnRate, "churn-rate", d.churnRate, "connects/s toward one destination that, with short lives, is flagged as churn")
	fs.DurationVar(&d.shortLife, "churn-life", d.shortLife, "connections shorter than this count as churn")
}

// diagnosisConfig parses the filters of f for a mode that runs the
// diagnosis alone (report, top): the kernel's filter and the pipeline's
// configuration, without sinks.
func diagnosisConfig(f *flags, live bool) (probe.Filter, pipeline.Config, error) {
	kf, uf, err := f.filter()
	if err != nil {
		return kf, pipeline.Config{}, err
	}
	cont, err := f.containerFilter(live)
	if err != nil {
		return kf, pipeline.Config{}, err
	}
	return kf, pipeline.Config{Filter: uf, Containers: cont, MaxConns: f.maxConns, Diagnosis: diag.options()}, nil
}

func (d *diagFlags) options() diagnosis.Options {
	return diagnosis.Options{Threshold: d.warnWithin, ChurnRate: d.churnRate, ShortLife: d.shortLife}
}

func init() {
	subcommands = append(subcommands, newReportCmd)
}

func newReportCmd(f *flags) *cobra.Command {
	var read, html string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Who closes first, who holds TIME_WAIT, failed connects and the port-exhaustion forecast",
		Long: `report traces for --duration (or until Ctrl-C), or replays a capture (-r FILE),
then prints: the top active closers, TIME_WAIT by destination and owner (as
the kernel reports each timewait socket, with those that predate tracing read
once at start from every namespace), failed
connects, end kinds, lifetime and time-in-state percentiles, and the
port-exhaustion forecast with its inputs. With --html FILE it also writes
the report as one self-contained HTML page: TIME_WAIT over time per
destination against the port range, the ladders of the connection shapes,
and the remedies with what each would have changed.`,
		Example: `  tcptrace report --duration 30s
  tcptrace report --json -r incident.tcpt
  tcptrace report -r incident.tcpt --html incident.html`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return runReport(cmd.Context(), f, read, html) },
	}
	cmd.Flags().StringVarP(&read, "read", "r", "", "report on a capture file instead of the live kernel (- : standard input)")
	cmd.Flags().StringVar(&html, "html", "", "also write the report as a self-contained HTML page to this file (- : standard output, instead of the text)")
	return cmd
}

// runReport traces until --duration or a signal, or replays the capture
// read, then prints the report (and writes it as HTML to html).
func runReport(ctx context.Context, f *flags, read, html string) error {
	kf, cfg, err := diagnosisConfig(f, read == "")
	if err != nil {
		return err
	}
	var out *htmlFile
	if html != "" {
		if out, err = createHTML(html); err != nil {
			return err
		}
	}
	if read != "" {
		return reportReplay(f, read, cfg, out)
	}
	cfg.Resolver = container.New(container.Options{})
	rp, err := newReportPrinter(f, liveClock(), cfg.Resolver)
	if err != nil {
		return err
	}
	src, memLim, err := openLive(f, kf, liveMemoryLimit, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	shapes := newShapes(&cfg, out != nil, nil)
	p := pipeline.New(src, cfg)
	attachShapes(shapes, p)
	p.Every(0, func(uint64) { memLim.adjust() })
	unwatch := stopOn(ctx, f.duration, src.Stop)
	defer unwatch()
	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes for the report; Ctrl-C to stop\n")
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", src.Probe().TimeWaitMethod())
	if err := p.Run(); err != nil {
		return err
	}
	rep := p.Report()
	if out != nil {
		in := htmlInput(shapes, p, rep, rp.opts.Clock)
		in.Source, in.ProcLabel = "live", rp.label
		in.Host, in.Kernel = thisHost()
		if err := out.write(in, rep); err != nil || html == "-" {
			return err
		}
	}
	return rp.print(rep, "tcptrace report (live, "+rep.Elapsed.Round(time.Millisecond).String()+")")
}

// reportReplay reports on the capture at path, with its recorded sysctls.
func reportReplay(f *flags, path string, cfg pipeline.Config, out *htmlFile) error {
	src, err := openReplay(path)
	if err != nil {
		return err
	}
	defer src.Close()
	r := src.Capture()
	rp, err := newReportPrinter(f, replayClock(r.Header()), nil)
	if err != nil {
		return err
	}
	shapes := newShapes(&cfg, out != nil, nil)
	p := pipeline.New(src, cfg)
	attachShapes(shapes, p)
	if err := p.Run(); err != nil {
		return fmt.Errorf("%s: %w", captureName(path), err)
	}
	rep := p.Report()
	if out != nil {
		in := htmlInput(shapes, p, rep, rp.opts.Clock)
		h := r.Header()
		in.Source, in.Host, in.Kernel = "capture "+captureName(path), h.Host, h.Kernel
		if err := out.write(in, rep); err != nil {
			return err
		}
	}
	if out == nil || out.path != "-" { // else the page took standard output
		if err := rp.print(rep, "tcptrace report ("+captureName(path)+", "+rep.Elapsed.Round(time.Millisecond).String()+")"); err != nil {
			return err
		}
	}
	if r.Truncated() != nil {
		fmt.Fprintln(os.Stderr, replayNote(path, r))
		return exitError(2)
	}
	return nil
}
