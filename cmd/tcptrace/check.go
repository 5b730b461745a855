package main

// The command line's checks, run before anything is printed: the flags
// each mode uses, then each flag's value. A bad command line is one line
// that names the flag and what it accepts, and exit status 2.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/render/diagram"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// usageError is a bad command line: its one line is printed and the exit
// status is 2.
type usageError struct{ error }

// Unwrap returns the error said.
func (e usageError) Unwrap() error { return e.error }

// usagef makes a usage error.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Bounds of the flags' values.
const (
	minPoll     = time.Millisecond
	maxPoll     = 10 * time.Second
	maxMaxConns = 1 << 24
	maxWidth    = 1000
	maxRing     = 1 << 30
)

// accepts says what each flag accepts, for the message of a bad value.
var accepts = map[string]string{
	"duration":     "a positive duration such as 30s or 5m (leave --duration out to trace until Ctrl-C)",
	"warn-within":  "a positive duration such as 60s",
	"churn-life":   "a positive duration such as 500ms",
	"churn-rate":   "a positive number of connects per second, such as 50",
	"poll":         fmt.Sprintf("a duration from %v to %v", minPoll, maxPoll),
	"max-conns":    fmt.Sprintf("1 to %d connections", maxMaxConns),
	"width":        fmt.Sprintf("%d to %d columns", style.MinWidth, maxWidth),
	"color":        "auto, always or never",
	"ring-size":    fmt.Sprintf("a power of two from %dKiB to 1GiB, such as 16MiB", os.Getpagesize()>>10),
	"port":         "a port from 1 to 65535 (repeat --port for any of several)",
	"host":         "an IP address or a CIDR prefix such as 10.0.0.0/8 (repeat --host for any of several)",
	"pid":          "a process ID, 1 or more",
	"comm":         "a process name of 1 to 15 bytes (the kernel's task name)",
	"state":        "a TCP state: ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN or CLOSING",
	"rotate-size":  fmt.Sprintf("a size of at least %dKiB, such as 100MiB", capture.MinRotateSize>>10),
	"rotate-count": "a number of files to keep, 0 (all, the default) or more",
}

// badValue says what --name accepts, given the value it got.
func badValue(name, value string) error {
	return usagef("--%s %s: want %s", name, shown(value), accepts[name])
}

// shown quotes a value only when it needs it.
func shown(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\"'") {
		return strconv.Quote(v)
	}
	return v
}

// flagParseError makes the parser's error a usage error; a value the
// parser refused is said as what the flag accepts.
func flagParseError(err error) error {
	var bad *pflag.InvalidValueError
	if errors.As(err, &bad) {
		if name := bad.GetFlag().Name; accepts[name] != "" {
			return badValue(name, bad.GetValue())
		}
	}
	return usageError{err}
}

// mode is what a command line runs, for the flags it uses.
type mode struct {
	name string          // for messages: "a replay", "report", "serve"
	uses map[string]bool // the shared flags it uses; nil: all
	live bool            // it traces the running kernel
}

// The shared flags (the root's persistent ones), by what uses them.
var (
	filterFlags = []string{"pid", "comm", "port", "host", "netns", "container"}
	kernelFlags = []string{"duration", "ring-size", "poll", "self-test", "simulate-drops"}
	diagFlagSet = []string{"warn-within", "churn-rate", "churn-life", "max-conns"}
	viewFlags   = []string{"json", "state", "color", "ascii", "width", "diagram", "no-summary"}
	textFlags   = []string{"color", "ascii", "width"}
	anyMode     = []string{"cpuprofile", "memprofile"}
)

// set gathers flag names.
func set(lists ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			m[n] = true
		}
	}
	return m
}

// modeOf tells what cmd runs: live tracing, a replay, a report (live or
// of a capture) or serve. Other commands (help, completion) check nothing.
func modeOf(cmd *cobra.Command, cf *captureFlags) mode {
	switch cmd.Name() {
	case "replay":
		return mode{name: "a replay", uses: set(filterFlags, diagFlagSet, viewFlags, anyMode)}
	case "report":
		if fl := cmd.Flags().Lookup("read"); fl != nil && fl.Value.String() != "" {
			return mode{name: "report -r", uses: set(filterFlags, diagFlagSet, []string{"json"}, textFlags, anyMode)}
		}
		return mode{name: "report", uses: set(filterFlags, kernelFlags, diagFlagSet, []string{"json"}, textFlags, anyMode), live: true}
	case "serve":
		return mode{name: "serve", uses: set(filterFlags, kernelFlags, diagFlagSet, []string{"json", "state"}, anyMode), live: true}
	}
	if cmd != cmd.Root() {
		return mode{}
	}
	if cf.read != "" {
		return mode{name: "a replay", uses: set(filterFlags, diagFlagSet, viewFlags, anyMode)}
	}
	return mode{name: "live tracing", live: true}
}

// check refuses a bad command line before anything runs.
func check(cmd *cobra.Command, f *flags, cf *captureFlags) error {
	m := modeOf(cmd, cf)
	if m.name == "" {
		return nil
	}
	if err := m.refuseUnused(cmd.Flags(), f, cf); err != nil {
		return err
	}
	if err := f.check(cmd.Flags(), m.live); err != nil {
		return err
	}
	if cmd == cmd.Root() {
		return cf.checkFiles()
	}
	return nil
}

// refuseUnused refuses a shared flag the mode does not use, or that the
// other flags make unused.
func (m mode) refuseUnused(fs *pflag.FlagSet, f *flags, cf *captureFlags) error {
	changed := func(n string) bool { fl := fs.Lookup(n); return fl != nil && fl.Changed }
	if m.uses != nil {
		var err error
		fs.VisitAll(func(fl *pflag.Flag) {
			if err == nil && fl.Changed && sharedFlags[fl.Name] && !m.uses[fl.Name] {
				err = usagef("--%s: %s does not use it", fl.Name, m.name)
			}
		})
		if err != nil {
			return err
		}
	}
	switch {
	case f.diagram != "" && f.json:
		return usagef("--diagram draws text: it does not combine with --json")
	case f.diagram != "" && changed("state"):
		return usagef("--state: not used with --diagram (a ladder shows every step)")
	case m.name == "serve" && changed("state") && !f.json:
		return usagef("--state: serve uses it only with --json (it selects the streamed transitions)")
	case cf.write == "-" && (f.json || f.diagram != ""):
		return usagef("--%s: with -w - standard output carries only the capture (write the capture to a file to see a view too)",
			map[bool]string{true: "json", false: "diagram"}[f.json])
	}
	if f.json {
		for _, n := range textFlags {
			if changed(n) {
				return usagef("--%s: not used with --json", n)
			}
		}
	}
	return nil
}

// sharedFlags are the root's persistent flags, which every command
// inherits (a command's own flags are its own business).
var sharedFlags = set(filterFlags, kernelFlags, diagFlagSet, viewFlags, anyMode)

// check refuses a flag value out of its range. live: the mode traces the
// running kernel (--container needs its cgroups).
func (f *flags) check(fs *pflag.FlagSet, live bool) error {
	changed := func(n string) bool { fl := fs.Lookup(n); return fl != nil && fl.Changed }
	positive := map[string]time.Duration{"duration": f.duration, "warn-within": diag.warnWithin, "churn-life": diag.shortLife}
	for _, n := range []string{"duration", "warn-within", "churn-life"} {
		if changed(n) && positive[n] <= 0 {
			return badValue(n, positive[n].String())
		}
	}
	lists := map[string][]string{"port": f.ports, "host": f.hosts, "state": f.states}
	for _, n := range []string{"port", "host", "state"} {
		if changed(n) && len(lists[n]) == 0 { // --port= would select everything
			return badValue(n, "")
		}
	}
	switch r := diag.churnRate; {
	case changed("churn-rate") && (r <= 0 || math.IsInf(r, 0) || math.IsNaN(r)):
		return badValue("churn-rate", strconv.FormatFloat(r, 'g', -1, 64))
	case changed("poll") && (f.poll < minPoll || f.poll > maxPoll):
		return badValue("poll", f.poll.String())
	case changed("max-conns") && (f.maxConns < 1 || f.maxConns > maxMaxConns):
		return badValue("max-conns", strconv.Itoa(f.maxConns))
	case changed("width") && (f.width < style.MinWidth || f.width > maxWidth):
		return badValue("width", strconv.Itoa(f.width))
	case changed("pid") && f.pid == 0:
		return badValue("pid", "0")
	case changed("comm") && (f.comm == "" || len(f.comm) > 15):
		return badValue("comm", f.comm)
	}
	if _, err := useColor(f.color, os.Stdout); err != nil {
		return err
	}
	if _, err := f.ring(); err != nil {
		return err
	}
	if f.diagram != "" {
		if _, err := diagram.ParseSelect(f.diagram); err != nil {
			return flagError("--diagram", err)
		}
	}
	if _, _, err := f.filter(); err != nil {
		return err
	}
	_, err := f.containerFilter(live)
	return err
}

// checkFiles refuses, before tracing starts, a capture that would replace
// a file without --overwrite, and a capture written to a terminal.
func (c *captureFlags) checkFiles() error {
	if err := c.check(); err != nil {
		return err
	}
	switch {
	case c.write == "-" && isatty.IsTerminal(os.Stdout.Fd()):
		return usagef("--write -: standard output is a terminal; redirect it to a file or a pipe")
	case c.write == "" || c.write == "-" || c.overwrite:
		return nil
	}
	files := []string{c.write}
	if c.rotateSize != "" {
		files = append(files, c.write+".1") // rotation would shift the older files
	}
	for _, p := range files {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("--write %s: %s exists; --overwrite replaces it", c.write, p)
		}
	}
	return nil
}
