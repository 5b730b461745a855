package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/ledger"
	"github.com/tcptrace/tcptrace/internal/pipeline"
)

// captureFlags are the command line of recording (-w) and replay (-r).
type captureFlags struct {
	write       string
	overwrite   bool
	rotateSize  string
	rotateCount int
	read        string
}

func (c *captureFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&c.write, "write", "w", "", "record every event to this capture file (mode 0600) for later replay; - : to standard output, which then carries only the capture")
	fs.BoolVar(&c.overwrite, "overwrite", false, "let --write replace an existing capture")
	fs.StringVarP(&c.rotateSize, "rotate-size", "C", "", "with --write: start a new file once one reaches this size (e.g. 100MiB); older ones become FILE.1, FILE.2, ...")
	fs.IntVarP(&c.rotateCount, "rotate-count", "W", 0, "with --rotate-size: keep at most this many files, the oldest removed (default: all)")
	fs.StringVarP(&c.read, "read", "r", "", "replay a capture file instead of tracing the kernel (no privileges needed); - : from standard input")
}

// check rejects contradictory capture flags and bad values.
func (c *captureFlags) check() error {
	switch {
	case c.read != "" && c.write != "":
		return usagef("--read and --write: choose one")
	case c.write == "" && (c.rotateSize != "" || c.rotateCount != 0 || c.overwrite):
		return usagef("--rotate-size, --rotate-count and --overwrite need --write")
	case c.write == "-" && (c.rotateSize != "" || c.overwrite):
		return usagef("--rotate-size and --overwrite need a file: -w - writes one stream to standard output")
	case c.rotateCount != 0 && c.rotateSize == "":
		return usagef("--rotate-count needs --rotate-size")
	case c.rotateCount < 0:
		return badValue("rotate-count", strconv.Itoa(c.rotateCount))
	}
	if c.rotateSize != "" {
		if n, err := parseSize(c.rotateSize); err != nil || n < capture.MinRotateSize {
			return badValue("rotate-size", c.rotateSize)
		}
	}
	return nil
}

// newRecorder creates the capture of --write, or returns nil without it.
// The pipeline writes, flushes and closes it. offset is the wall clock less
// the monotonic one, startMono when tracing began; twEvents says whether
// the source reports timewait sockets.
func newRecorder(cf *captureFlags, offset int64, startMono uint64, twEvents bool) (*capture.Writer, error) {
	if err := cf.check(); err != nil || cf.write == "" {
		return nil, err
	}
	opts := capture.Options{Overwrite: cf.overwrite, RotateCount: cf.rotateCount, Tool: "tcptrace " + version, ClockOffset: offset, StartMono: startMono,
		TimeWaitEvents: twEvents}
	if cf.rotateSize != "" {
		n, err := parseSize(cf.rotateSize)
		if err != nil {
			return nil, badValue("rotate-size", cf.rotateSize)
		}
		opts.RotateSize = int64(n)
	}
	if cf.write == "-" {
		w, err := capture.NewWriter(os.Stdout, opts)
		if err != nil {
			return nil, fmt.Errorf("--write -: %w", err)
		}
		return w, nil
	}
	w, err := capture.Create(cf.write, opts)
	if err != nil {
		return nil, fmt.Errorf("--write: %w", err)
	}
	return w, nil
}

// openReplay opens the capture at path, or standard input for "-" (as
// tcpdump -r -), before anything is printed.
func openReplay(path string) (*pipeline.Replay, error) {
	if path != "-" {
		return pipeline.OpenReplay(path)
	}
	if isatty.IsTerminal(os.Stdin.Fd()) {
		return nil, usagef("--read -: standard input is a terminal; pipe or redirect a capture into it")
	}
	src, err := pipeline.NewReplay(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("standard input: %w", err)
	}
	return src, nil
}

// captureName names a capture file in messages: "-" is standard input.
func captureName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// replayNote returns the one-line note to print on stderr after a replay
// ended (io.EOF): "" if the capture ended cleanly.
func replayNote(path string, r *capture.Reader) string {
	if t := r.Truncated(); t != nil {
		return fmt.Sprintf("tcptrace: %s: capture %s: %d events read (recording was not closed cleanly)", captureName(path), t, t.Events)
	}
	return ""
}

// describeCapture writes the capture's header to stderr: where and when it
// was recorded, and each namespace's TIME_WAIT sysctls.
func describeCapture(path string, r *capture.Reader) {
	h := r.Header()
	fmt.Fprintf(os.Stderr, "tcptrace: replaying %s: recorded on %s (kernel %s) by %s from %s\n",
		captureName(path), h.Host, h.Kernel, h.Tool, replayClock(h).Time(h.StartMono).Format(time.RFC3339))
	for _, n := range h.Netns {
		fmt.Fprintf(os.Stderr, "tcptrace: netns %d:", n.Inode)
		for _, k := range ledger.SysctlNames {
			if v, ok := n.Sysctls[k]; ok { // older captures lack the newer names
				fmt.Fprintf(os.Stderr, " %s=%s", k, v)
			}
		}
		fmt.Fprintln(os.Stderr)
	}
}
