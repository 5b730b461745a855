package ledger

import (
	"fmt"
	"strconv"
	"strings"
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
	dumpCost      = 200             // a namespace's next dump waits max(period, dumpCost×ΣD+J), the sum of every watched namespace's latest dump D and join J: ≤ 0.5% of a CPU in all
)

// The kernel's default ip_local_port_range.
const defaultPortLo, defaultPortHi = 32768, 60999

type nsState struct {
	path    string
	h       *diagSock
	sysctls map[string]string
	lo, hi  uint16 // ephemeral range parsed from sysctls
	dumps   int
	due     time.Time // no dump before
	failed  time.Time
	err     error
	cost    time.Duration // its latest dump and its predecessor's join
}

// Poller dumps the watched namespaces' tables at a period, in the background.
// Watch, Take and Snapshot.Release are safe for concurrent use.
type Poller struct {
	proc   string
	period time.Duration
	mu     sync.Mutex
	pollMu sync.Mutex // one dump at a time: the loop's or a direct PollOnce
	want   map[uint32]bool
	ready  map[uint32]*Snapshot
	spare  map[uint32]*Snapshot     // released snapshots, the next dumps' memory
	taken  []*Snapshot              // Take's latest answer
	lentAt time.Time                // when Take lent them, or the previous one was released
	joined map[uint32]time.Duration // per namespace, how long its latest snapshot was lent
	ns     map[uint32]*nsState      // the loop's own (pollMu), as are the fields below
	buf    []byte                   // receive buffer of every dump
	todo   []uint32
	stop   chan struct{}
	done   chan struct{}
}

// NewPoller returns a poller of /proc-rooted namespaces, not yet started.
func NewPoller(proc string, period time.Duration) *Poller {
	if period <= 0 {
		period = DefaultPeriod
	}
	return &Poller{proc: proc, period: period, want: map[uint32]bool{}, ready: map[uint32]*Snapshot{},
		spare: map[uint32]*Snapshot{}, ns: map[uint32]*nsState{}, joined: map[uint32]time.Duration{}}
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

// Take returns the snapshots made since the previous call, newest per
// namespace. They, and the returned slice, stay valid until the next Take
// or their Release; the poller then reuses their memory.
func (p *Poller) Take() []*Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.taken {
		p.release(s)
	}
	p.taken = p.taken[:0]
	if len(p.ready) == 0 {
		return nil
	}
	p.lentAt = time.Now()
	for k, s := range p.ready {
		s.lent = true
		p.taken = append(p.taken, s)
		delete(p.ready, k)
	}
	return p.taken
}

// Release hands a snapshot from Take back to its poller for a later dump; it
// must not be used after. Engine.Ledger releases the snapshots it joins,
// each as soon as it is joined: the time a snapshot was lent counts, with
// the dump's, in the wait before its namespace's next dump.
func (s *Snapshot) Release() {
	if s == nil || s.owner == nil {
		return
	}
	p := s.owner
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.lent {
		now := time.Now()
		p.joined[s.Netns] = now.Sub(p.lentAt)
		p.lentAt = now // snapshots taken together are joined one after another
	}
	p.release(s)
}

// release files a lent snapshot as its namespace's spare (mu held).
func (p *Poller) release(s *Snapshot) {
	if !s.lent {
		return
	}
	s.lent = false
	if old := p.spare[s.Netns]; old == nil || cap(old.TimeWait) < cap(s.TimeWait) {
		p.spare[s.Netns] = s
	}
}

// buffer returns the memory for a dump of ns: its spare, else its snapshot
// no one took yet (the dump replaces it anyway), else a new one.
func (p *Poller) buffer(ns uint32) *Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.spare[ns]
	if s != nil {
		delete(p.spare, ns)
	} else if s = p.ready[ns]; s != nil {
		delete(p.ready, ns)
	} else {
		s = &Snapshot{owner: p}
	}
	s.Netns = ns
	return s
}

// Start dumps each namespace every period (longer for a big table) until Close.
func (p *Poller) Start() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	stop := p.stop
	go func() {
		defer close(p.done)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			t.Reset(p.poll(false))
		}
	}()
}

// PollOnce dumps every watched namespace now and files the snapshots for
// Take. Call it either from Start's loop or, without Start, directly.
func (p *Poller) PollOnce() { p.poll(true) }

// poll dumps the watched namespaces that are due (all with force) and
// returns how long until the next is (at most a period: new ones wait no longer).
func (p *Poller) poll(force bool) time.Duration {
	p.pollMu.Lock()
	defer p.pollMu.Unlock()
	if p.ns == nil {
		return p.period // closed
	}
	p.mu.Lock()
	p.todo = p.todo[:0]
	for ns := range p.want {
		p.todo = append(p.todo, ns)
	}
	p.mu.Unlock()
	next := p.period
	for _, ns := range p.todo {
		st := p.ns[ns]
		if st == nil {
			st = &nsState{}
			p.ns[ns] = st
		}
		if wait := time.Until(st.due); !force && wait > time.Millisecond {
			next = min(next, wait)
			continue
		}
		s := p.snapshot(ns, st)
		p.mu.Lock()
		p.ready[ns] = s
		p.mu.Unlock()
		next = min(next, time.Until(st.due))
	}
	return max(next, time.Millisecond)
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
func (p *Poller) snapshot(ino uint32, st *nsState) *Snapshot {
	s := p.buffer(ino)
	s.reset()
	start := time.Now()
	st.due = start.Add(p.period)
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
		st.lo, st.hi = portRange(st.sysctls)
	}
	st.dumps++
	s.Sysctls, s.PortLo, s.PortHi = st.sysctls, st.lo, st.hi
	if p.buf == nil {
		p.buf = make([]byte, recvBufLen)
	}
	start = time.Now()
	s.Time = monoNow()
	if err := st.h.dumpAll(p.buf, allStates, s); err != nil {
		s.Err = fmt.Errorf("netns %d: %w", ino, err)
		st.h.Close()
		st.h = nil
	}
	s.DumpTime = time.Since(start)
	p.mu.Lock()
	joined := p.joined[ino]
	p.mu.Unlock()
	// One budget for all namespaces: each dump walks the kernel's whole
	// connection table (namespaces share it), so N namespaces on a
	// budget each would cost N times as much.
	st.cost = s.DumpTime + joined
	var cost time.Duration
	for _, ns := range p.todo {
		if o := p.ns[ns]; o != nil {
			cost += o.cost
		}
	}
	s.Period = max(p.period, dumpCost*cost)
	st.due = start.Add(s.Period)
	return s
}

// portRange parses ip_local_port_range as diagnosis.ParseSysctls does,
// falling back to the kernel's default.
func portRange(m map[string]string) (lo, hi uint16) {
	if f := strings.Fields(m["ip_local_port_range"]); len(f) == 2 {
		l, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && l > 0 && h >= l && h < 65536 {
			return uint16(l), uint16(h)
		}
	}
	return defaultPortLo, defaultPortHi
}

// monoNow returns CLOCK_MONOTONIC in ns, the clock of event times.
func monoNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
