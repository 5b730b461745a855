package main

import (
	"fmt"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// flags are the command line of a live trace.
type flags struct {
	json      bool
	pid       uint32
	comm      string
	port      uint16
	host      string
	states    []string
	duration  time.Duration
	ringSize  string
	poll      time.Duration
	color     string
	ascii     bool
	width     int
	maxConns  int
	noSummary bool
	selfTest  bool
	diagram   string
	dropEvery uint32
	netns     string
	container string
	cpuProf   string
	memProf   string
	profOut   *os.File
}

func (f *flags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.json, "json", false, "one JSON object per line (transitions, connections, losses, summary)")
	fs.Uint32Var(&f.pid, "pid", 0, "only sockets owned by this process (tgid)")
	fs.StringVar(&f.comm, "comm", "", "only sockets owned by processes with this name")
	fs.Uint16Var(&f.port, "port", 0, "only connections with this local or remote port")
	fs.StringVar(&f.host, "host", "", "only connections with this local or remote address")
	fs.StringVar(&f.netns, "netns", "", "only connections in this network namespace (inode, or net:[inode])")
	fs.StringVar(&f.container, "container", "", "only connections of this container (ID prefix, pod name, namespace/pod, or host)")
	fs.StringSliceVar(&f.states, "state", nil, "only transitions leaving or entering these states (e.g. TIME_WAIT,CLOSE_WAIT)")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (default: until Ctrl-C or SIGTERM)")
	fs.StringVar(&f.ringSize, "ring-size", "4MiB", "kernel ring buffer size (power of two, e.g. 4MiB, 16MiB)")
	fs.DurationVar(&f.poll, "poll", probe.DefaultPollInterval, "reader poll period: the bound on display latency")
	fs.StringVar(&f.color, "color", "auto", "colour: auto (on a terminal without NO_COLOR), always, never")
	fs.BoolVar(&f.ascii, "ascii", false, "ASCII arrows and marks only")
	fs.IntVar(&f.width, "width", 0, "output width in columns (default: the terminal's, or 80)")
	fs.IntVar(&f.maxConns, "max-conns", events.DefaultMaxConns, "bound of the tracked-connection table (evictions are counted)")
	fs.BoolVar(&f.noSummary, "no-summary", false, "do not print the summary on exit")
	fs.BoolVar(&f.selfTest, "self-test", true, "check at start that a loopback connection is traced")
	fs.StringVar(&f.diagram, "diagram", "", "draw each connection's state ladder when it ends (=COOKIE: one connection; =aggregate: one ladder per shape, at exit)")
	fs.Lookup("diagram").NoOptDefVal = "all"
	fs.Uint32Var(&f.dropEvery, "simulate-drops", 0, "testing: the kernel drops every Nth state transition, counted as lost like a full ring")
	_ = fs.MarkHidden("simulate-drops")
	fs.StringVar(&f.cpuProf, "cpuprofile", "", "debugging: write a Go CPU profile of the run to this file")
	_ = fs.MarkHidden("cpuprofile")
	fs.StringVar(&f.memProf, "memprofile", "", "debugging: write a Go allocation profile at exit to this file")
	_ = fs.MarkHidden("memprofile")
}

// filter builds the kernel and userspace filters from the flags.
func (f *flags) filter() (probe.Filter, events.Filter, error) {
	var kf probe.Filter
	var uf events.Filter
	kf.PID, uf.PID = f.pid, f.pid
	kf.Comm, uf.Comm = f.comm, f.comm
	kf.Port, uf.Port = f.port, f.port
	if len(f.comm) > 15 {
		return kf, uf, fmt.Errorf("--comm %q: longer than the kernel's 15-byte task names", f.comm)
	}
	if f.host != "" {
		a, err := netip.ParseAddr(f.host)
		if err != nil {
			return kf, uf, fmt.Errorf("--host %q: not an IP address", f.host)
		}
		kf.Host, uf.Host = a, a
	}
	for _, s := range f.states {
		st, ok := events.ParseState(s)
		if !ok {
			return kf, uf, fmt.Errorf("--state %q: not a TCP state (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING)", s)
		}
		uf.States = append(uf.States, st)
	}
	return kf, uf, nil
}

// connOnly is uf without --state: the connections, every step of them.
func connOnly(uf events.Filter) events.Filter {
	uf.States = nil
	return uf
}

// containerFilter builds the --netns/--container filter. Containers are
// named from this host's cgroups: live only. A replay has the recorded
// netns of each connection, not the recording host's cgroup tree.
func (f *flags) containerFilter(live bool) (container.Filter, error) {
	cf := container.Filter{Container: f.container}
	if f.netns != "" {
		n, err := container.ParseNetns(f.netns)
		if err != nil {
			return cf, flagError("--netns", err)
		}
		cf.Netns = n
	}
	if err := cf.Check(); err != nil {
		return cf, flagError("--container", err)
	}
	if !live && cf.Container != "" {
		return cf, fmt.Errorf("--container needs the live host's cgroups; on a replay filter with --netns")
	}
	return cf, nil
}

// flagError puts the flag's name before a library's error about its value,
// once: a message that starts with the name already is left as it is.
func flagError(name string, err error) error {
	if m := err.Error(); strings.HasPrefix(m, name+":") || strings.HasPrefix(m, name+" ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// parseSize parses "8MiB", "4M", "65536" into bytes.
func parseSize(s string) (int, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(t))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

// ring validates --ring-size.
func (f *flags) ring() (int, error) {
	n, err := parseSize(f.ringSize)
	if err != nil {
		return 0, fmt.Errorf("--ring-size: %w", err)
	}
	if n < 4096 || n&(n-1) != 0 {
		return 0, fmt.Errorf("--ring-size %s: must be a power of two of at least 4KiB", f.ringSize)
	}
	return n, nil
}

// startProfile starts the --cpuprofile CPU profile, if asked for.
func (f *flags) startProfile() error {
	if f.cpuProf == "" {
		return nil
	}
	out, err := os.Create(f.cpuProf)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	f.profOut = out
	return pprof.StartCPUProfile(out)
}

// stopProfile ends the CPU profile.
func (f *flags) stopProfile() {
	if f.profOut != nil {
		pprof.StopCPUProfile()
		f.profOut.Close()
	}
	if f.memProf != "" {
		if out, err := os.Create(f.memProf); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(out, 0)
			out.Close()
		}
	}
}
