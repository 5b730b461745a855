package ledger

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Limits of the poller.
const (
	MaxNetns      = 256             // namespaces watched at once
	DefaultPeriod = time.Second     // between dumps
	sysctlEvery   = 10              // dumps between sysctl reads
	retryAfter    = 5 * time.Second // before looking for a lost namespace again
	bigTable      = 20000           // sockets per extra period between dumps
)

type nsState struct {
	path    string
	h       *diagSock
	sysctls map[string]string
	dumps   int
	skip    int // dumps to skip: a big table is read less often
	failed  time.Time
	err     error
}

// Poller dumps the watched namespaces' tables at a period, in the background.
// Watch and Take are safe for concurrent use.
type Poller struct {
	proc   string
	period time.Duration
	mu     sync.Mutex
	pollMu sync.Mutex // one dump at a time: the loop's or a direct PollOnce
	want   map[uint32]bool
	ready  map[uint32]*Snapshot
	ns     map[uint32]*nsState // the loop's own
	stop   chan struct{}
	done   chan struct{}
}

// NewPoller returns a poller of /proc-rooted namespaces, not yet started.
func NewPoller(proc string, period time.Duration) *Poller {
	if period <= 0 {
		period = DefaultPeriod
	}
	return &Poller{proc: proc, period: period, want: map[uint32]bool{},
		ready: map[uint32]*Snapshot{}, ns: map[uint32]*nsState{}}
}

// Watch adds a namespace (by inode) to those dumped; it reports false when
// MaxNetns are already watched.
func (p *Poller) Watch(netns uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.want[netns] {
		return true
	}
	if len(p.want) >= MaxNetns {
		return false
	}
	p.want[netns] = true
	return true
}

// Take returns the snapshots made since the previous call, newest per namespace.
func (p *Poller) Take() []*Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 {
		return nil
	}
	out := make([]*Snapshot, 0, len(p.ready))
	for k, s := range p.ready {
		out = append(out, s)
		delete(p.ready, k)
	}
	return out
}

// Start dumps every period until Close.
func (p *Poller) Start() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	stop := p.stop
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.period)
		defer t.Stop()
		for {
			p.PollOnce()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
}

// PollOnce dumps every watched namespace now and files the snapshots for
// Take. Call it either from Start's loop or, without Start, directly.
func (p *Poller) PollOnce() {
	p.pollMu.Lock()
	defer p.pollMu.Unlock()
	if p.ns == nil {
		return // closed
	}
	p.mu.Lock()
	want := make([]uint32, 0, len(p.want))
	for ns := range p.want {
		want = append(want, ns)
	}
	p.mu.Unlock()
	for _, ns := range want {
		if st := p.ns[ns]; st != nil && st.skip > 0 {
			st.skip--
			continue
		}
		s := p.snapshot(ns)
		p.mu.Lock()
		p.ready[ns] = s
		p.mu.Unlock()
	}
}

// Close stops the loop and closes every netlink socket. It does not wait
// for a dump in progress: that dump closes them when it returns.
func (p *Poller) Close() {
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	go func() {
		p.pollMu.Lock()
		defer p.pollMu.Unlock()
		for _, st := range p.ns {
			if st.h != nil {
				st.h.Close()
			}
		}
		p.ns = nil
	}()
}

// snapshot dumps one namespace.
func (p *Poller) snapshot(ino uint32) *Snapshot {
	s := &Snapshot{Netns: ino}
	st := p.ns[ino]
	if st == nil {
		st = &nsState{}
		p.ns[ino] = st
	}
	if st.h != nil && inode(st.path) != ino {
		st.h.Close() // the path now names another namespace
		st.h, st.path = nil, ""
	}
	if st.h == nil {
		if !st.failed.IsZero() && time.Since(st.failed) < retryAfter {
			s.Err = st.err
			return s
		}
		path, err := findNetns(p.proc, ino)
		if err == nil {
			st.h, err = openHandle(path)
		}
		if err != nil {
			st.failed, st.err, s.Err = time.Now(), err, err
			return s
		}
		st.path, st.failed, st.err, st.dumps = path, time.Time{}, nil, 0
	}
	if st.dumps%sysctlEvery == 0 {
		if m, err := readSysctls(p.proc, st.path); err == nil {
			st.sysctls = m
		}
	}
	st.dumps++
	s.Sysctls = st.sysctls
	s.Time = monoNow()
	if err := dump(st.h, s); err != nil {
		s.Err = fmt.Errorf("netns %d: %w", ino, err)
		st.h.Close()
		st.h = nil
	}
	// Dumping costs about 1 µs a socket: read a big table less often.
	st.skip = (len(s.TimeWait) + len(s.Open) + len(s.Listening)) / bigTable
	return s
}

// monoNow returns CLOCK_MONOTONIC in ns, the clock of event times.
func monoNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
