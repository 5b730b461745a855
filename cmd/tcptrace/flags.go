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
	ports     []string
	hosts     []string
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
	fs.StringSliceVar(&f.ports, "port", nil, "only connections with this local or remote port; repeated (or 6379,8080): any of them")
	fs.StringSliceVar(&f.hosts, "host", nil, "only connections with a local or remote address in this address or CIDR prefix; repeated: any of them")
	fs.StringVar(&f.netns, "netns", "", "only connections in this network namespace (inode, or net:[inode])")
	fs.StringVar(&f.container, "container", "", "only connections of this container (ID prefix, pod name, namespace/pod, or host)")
	fs.StringSliceVar(&f.states, "state", nil, "only transitions leaving or entering these states (e.g. TIME_WAIT,CLOSE_WAIT)")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long, more than 0 (default: until Ctrl-C or SIGTERM)")
	fs.StringVar(&f.ringSize, "ring-size", "4MiB", "kernel ring buffer size (power of two, e.g. 4MiB, 16MiB)")
	fs.DurationVar(&f.poll, "poll", probe.DefaultPollInterval, "reader poll period, 1ms to 10s: the bound on display latency")
	fs.StringVar(&f.color, "color", "auto", "colour: auto (on a terminal without NO_COLOR), always, never")
	fs.BoolVar(&f.ascii, "ascii", false, "ASCII arrows and marks only")
	fs.IntVar(&f.width, "width", 0, "output width in columns, 72 to 1000 (default: the terminal's, or 80)")
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

// filter builds the kernel and userspace filters from the flags. The
// kernel filters by one port and one address: with several, or a prefix,
// it lets every port or address through and userspace filters.
func (f *flags) filter() (probe.Filter, events.Filter, error) {
	var kf probe.Filter
	var uf events.Filter
	kf.PID, uf.PID = f.pid, f.pid
	kf.Comm, uf.Comm = f.comm, f.comm
	ports, err := parsePorts(f.ports)
	if err != nil {
		return kf, uf, err
	}
	hosts, err := parseHosts(f.hosts)
	if err != nil {
		return kf, uf, err
	}
	uf.Ports, uf.Hosts = ports, hosts
	kf.Port, kf.Host = uf.Kernel()
	for _, s := range f.states {
		st, ok := events.ParseState(s)
		if !ok {
			return kf, uf, badValue("state", s)
		}
		uf.States = append(uf.States, st)
	}
	return kf, uf, nil
}

// parsePorts parses --port values: 1 to 65535.
func parsePorts(vals []string) ([]uint16, error) {
	var ports []uint16
	for _, v := range vals {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil || n == 0 {
			return nil, badValue("port", v)
		}
		ports = append(ports, uint16(n))
	}
	return ports, nil
}

// parseHosts parses --host values: an address or a CIDR prefix.
func parseHosts(vals []string) ([]netip.Prefix, error) {
	var hosts []netip.Prefix
	for _, v := range vals {
		p, err := events.ParseHost(strings.TrimSpace(v))
		if err != nil {
			return nil, badValue("host", v)
		}
		hosts = append(hosts, p)
	}
	return hosts, nil
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
		return cf, usagef("--container needs the live host's cgroups; on a replay filter with --netns")
	}
	return cf, nil
}

// flagError puts the flag's name before a library's error about its value,
// once (a message that starts with the name already is left as it is): a
// usage error.
func flagError(name string, err error) error {
	if m := err.Error(); strings.HasPrefix(m, name+":") || strings.HasPrefix(m, name+" ") {
		return usageError{err}
	}
	return usageError{fmt.Errorf("%s: %w", name, err)}
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
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

// ring validates --ring-size: a power of two of whole pages, at most
// maxRing.
func (f *flags) ring() (int, error) {
	n, err := parseSize(f.ringSize)
	if err != nil || n < os.Getpagesize() || n > maxRing || n&(n-1) != 0 {
		return 0, badValue("ring-size", f.ringSize)
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
