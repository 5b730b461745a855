// Package probe loads the tcptrace eBPF program, attaches it to the kernel and
// reads its ring buffer: the live source of the event stream.
package probe

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Defaults for Options.
const (
	DefaultRingSize     = 4 << 20 // ~55k records, all of them in RSS once the ring has wrapped
	DefaultPollInterval = 50 * time.Millisecond
)

// MaxComm is the longest Filter.Comm: the kernel's task names are 15 bytes.
const MaxComm = 15

// Filter selects what the kernel passes to userspace. Zero fields match all.
type Filter struct {
	PID  uint32
	Comm string
	Port uint16
	Host netip.Addr
}

// Options configure a Probe.
type Options struct {
	RingSize     int           // ring-buffer bytes, a power of two ≥ page size; DefaultRingSize if 0
	WakeupBytes  int           // wake the reader early past this much unread data; RingSize/8 if 0
	PollInterval time.Duration // reader poll period, the latency bound; DefaultPollInterval if 0
	Filter       Filter
	SkipSelfTest bool
	DropEvery    uint32 // tests: the kernel drops every Nth state transition and counts it as ring loss
	OnIdle       func() // called from Next at each poll tick that finds the ring drained
	NoTimeWait   bool   // do not attach the timewait (timer) programs: benchmarks
}

// Probe is an attached tcptrace program and its ring-buffer reader.
type Probe struct {
	objs     tcptraceObjects
	link     link.Link
	twLinks  []link.Link // the timer programs', when attached
	twWhy    string      // why they are not
	ring     *ring
	opts     Options
	percpu   []uint64
	lost     events.Losses
	pending  []events.Event  // events ready for Next, in order
	held     []events.Event  // timewait cancels waiting for their partner (timewait.go)
	finWait2 map[uint64]bool // timewait sockets in FIN_WAIT2, by cookie
	self     map[uint64]bool
	reads    int
	deadline time.Time
	eof      bool // the ring is drained after Stop
	// kernelOwners: the kernel keeps owners and listeners (cfg.kernel_owners).
	kernelOwners bool
	statsMu      sync.Mutex // Losses may be called while Next runs
	// recursion is the program's recursion misses read at recursionAt.
	recursion   uint64
	recursionAt time.Time
}

// Open checks the system, loads and attaches the program, and runs the
// start-up self-test unless told not to.
func Open(opts Options) (*Probe, error) {
	if opts.RingSize == 0 {
		opts.RingSize = DefaultRingSize
	}
	if opts.WakeupBytes == 0 {
		opts.WakeupBytes = opts.RingSize / 8
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if err := checkSystem(); err != nil {
		return nil, err
	}
	spec, err := loadTcptrace()
	if err != nil {
		return nil, fmt.Errorf("loading embedded BPF object: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(opts.RingSize)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("counting CPUs: %w", err)
	}
	cfg, err := configFor(opts, ncpu)
	if err != nil {
		return nil, err
	}
	p := &Probe{opts: opts, self: map[uint64]bool{}, finWait2: map[uint64]bool{}, kernelOwners: cfg.KernelOwners != 0}
	cfg.TwTimerFn, p.twWhy = timeWaitConfig(opts)
	if err := spec.Variables["cfg"].Set(cfg); err != nil {
		return nil, fmt.Errorf("setting filter: %w", err)
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, loadError(err)
	}
	p.percpu = make([]uint64, ebpf.MustPossibleCPU())
	p.link, err = link.AttachTracing(link.TracingOptions{Program: p.objs.InetSockSetState})
	if err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("attaching tp_btf/inet_sock_set_state: %w", err)
	}
	if cfg.TwTimerFn != 0 {
		if err := p.attachTimeWait(); err != nil {
			p.twWhy = err.Error() // go on without them
		}
	}
	if p.ring, err = newRing(p.objs.Events.FD(), int(p.objs.Events.MaxEntries())); err != nil {
		p.Close()
		return nil, err
	}
	if !opts.SkipSelfTest {
		if err := p.selfTest(); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// configFor builds the program's load-time configuration. Each of ncpu CPUs
// wakes the reader once per WakeupBytes/ncpu it writes.
func configFor(opts Options, ncpu int) (tcptraceConfig, error) {
	f := opts.Filter
	cfg := tcptraceConfig{
		WakeupBytes: floorPow2(uint64(max(opts.WakeupBytes/max(ncpu, 1), 4096))),
		SelfPid:     uint32(os.Getpid()),
		Pid:         f.PID,
		Port:        f.Port,
		DropEvery:   opts.DropEvery,
	}
	if f.PID != 0 || f.Comm != "" {
		// Softirq transitions carry their owner only if the kernel
		// remembers it; otherwise userspace does, at no kernel cost.
		cfg.KernelOwners = 1
	}
	if len(f.Comm) > MaxComm {
		return cfg, fmt.Errorf("comm %q is longer than the kernel's %d-byte task names", f.Comm, MaxComm)
	}
	for i := 0; i < len(f.Comm); i++ {
		cfg.Comm[i] = int8(f.Comm[i])
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if h.Is4() {
			cfg.HostFamily = afInet
			a := h.As4()
			copy(cfg.Host[:], a[:])
		} else {
			cfg.HostFamily = afInet6
			cfg.Host = h.As16()
		}
	}
	return cfg, nil
}

// floorPow2 returns the largest power of two ≤ n (n > 0): the kernel tests
// crossings of wakeup_bytes with a mask.
func floorPow2(n uint64) uint64 {
	p := uint64(1)
	for p <= n/2 {
		p *= 2
	}
	return p
}

func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("loading BPF program (verifier): %+v", ve)
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("loading BPF program: %w: run as root, or grant CAP_BPF and CAP_PERFMON (see README)", err)
	}
	return fmt.Errorf("loading BPF program: %w", err)
}

// Next fills ev with the next record: a transition, a timewait step or,
// when the kernel's loss counters moved, a loss notice. It returns io.EOF
// after Stop once the ring is drained.
func (p *Probe) Next(ev *events.Event) error {
	if p.popPending(ev) {
		return nil
	}
	if p.eof {
		return io.EOF
	}
	for {
		if p.reads&4095 == 4095 {
			p.reads++
			if p.lossChanged(ev, false) {
				return nil
			}
		}
		if p.deadline.IsZero() {
			p.armDeadline()
		}
		rec, err := p.ring.next(p.deadline)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The ring was drained and a poll period passed: the
			// batched-wakeup latency bound.
			p.armDeadline()
			if p.opts.OnIdle != nil {
				p.opts.OnIdle()
			}
			if p.resolveHeld(clock.Mono()); p.popPending(ev) {
				return nil
			}
			if p.lossChanged(ev, false) {
				return nil
			}
			continue
		case errors.Is(err, errStopped):
			// Nothing more comes: held cancels are kills, then the
			// final loss notice.
			p.eof = true
			p.resolveAll()
			var loss events.Event
			if p.lossChanged(&loss, true) {
				p.pending = append(p.pending, loss)
			}
			if p.popPending(ev) {
				return nil
			}
			return io.EOF
		default:
			return fmt.Errorf("reading ring buffer: %w", err)
		}
		p.reads++
		if err := Decode(rec, ev); err != nil {
			return err
		}
		if len(p.self) > 0 && p.self[ev.Cookie] {
			if ev.New == events.Close {
				delete(p.self, ev.Cookie) // the self-test's socket is gone
			}
			continue
		}
		if p.order(ev) {
			return nil
		}
		if p.popPending(ev) {
			return nil
		}
	}
}

// armDeadline makes the reader return at the next poll tick even when the
// kernel, batching wakeups, has not woken it.
func (p *Probe) armDeadline() {
	p.deadline = time.Now().Add(p.opts.PollInterval)
}

// RingFill returns the share of the ring buffer that was written and not
// yet read when the reader last woke up: how close the ring came to full.
// Call it from Next's goroutine (the pipeline's).
func (p *Probe) RingFill() float64 { return float64(p.ring.woke) / float64(p.ring.mask+1) }

// SetOnIdle sets the function Next calls at each poll tick that finds the
// ring drained (Options.OnIdle).
func (p *Probe) SetOnIdle(fn func()) { p.opts.OnIdle = fn }

// Stop makes Next return what is left in the ring, then io.EOF. It may be
// called from another goroutine.
func (p *Probe) Stop() error {
	p.ring.stop()
	return nil
}

// lossChanged reads the loss counters and, when they moved, fills ev with a
// loss notice. Unless fresh, the recursion count may be up to
// recursionEvery old.
func (p *Probe) lossChanged(ev *events.Event, fresh bool) bool {
	l, err := p.losses(fresh)
	if err != nil || l == p.lost {
		return false
	}
	p.lost = l
	*ev = events.Event{Kind: events.KindLoss, Time: clock.Mono(), Lost: l}
	return true
}

// Losses returns the kernel's cumulative loss counters: ring-buffer reserve
// failures (per-CPU, summed) and the programs' recursion misses (summed).
func (p *Probe) Losses() (events.Losses, error) { return p.losses(true) }

// recursionEvery bounds how often the stream re-reads the program's
// recursion misses: reading program info costs about 200 µs here, the ring
// counters a few.
const recursionEvery = 250 * time.Millisecond

func (p *Probe) losses(fresh bool) (events.Losses, error) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	var l events.Losses
	if err := p.objs.Counters.Lookup(uint32(counterRingbufLost), &p.percpu); err != nil {
		return l, fmt.Errorf("reading loss counters: %w", err)
	}
	for _, v := range p.percpu {
		l.Ring += v
	}
	if fresh || time.Since(p.recursionAt) >= recursionEvery {
		n, err := p.recursionMisses()
		if err != nil {
			return l, err
		}
		p.recursion, p.recursionAt = n, time.Now()
	}
	l.Recursion = p.recursion
	return l, nil
}

// ProgramStats returns the transition program's run count and total run
// time in the kernel (counted while kernel.bpf_stats_enabled or EnableStats is on).
func (p *Probe) ProgramStats() (runs uint64, runtime time.Duration, err error) {
	st, err := p.objs.InetSockSetState.Stats()
	if err != nil {
		return 0, 0, err
	}
	return st.RunCount, st.Runtime, nil
}

// RingSize returns the ring buffer's size in bytes.
func (p *Probe) RingSize() int { return p.opts.RingSize }

// Close detaches the programs and frees their maps.
func (p *Probe) Close() error {
	var errs []error
	if p.ring != nil {
		errs = append(errs, p.ring.Close())
	}
	for _, l := range p.twLinks {
		errs = append(errs, l.Close())
	}
	if p.link != nil {
		errs = append(errs, p.link.Close())
	}
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

const counterRingbufLost = 0

// SeedListener tells the kernel the owner of a listening port that predates
// tracing, so its accepted children pass the in-kernel owner filters
// (Filter.PID, Filter.Comm) from their first event (without those filters
// userspace attributes them).
// family is the listening socket's own (AF_INET or AF_INET6).
func (p *Probe) SeedListener(netns uint32, port, family uint16, o events.Owner) error {
	if !p.kernelOwners {
		return nil // the kernel keeps listeners only for its owner filters
	}
	key := tcptraceListenKey{Netns: netns, Port: port, Family: family}
	val := tcptraceOwner{Pid: o.PID, Tid: o.TID}
	for i, b := range o.Comm {
		val.Comm[i] = int8(b)
	}
	if err := p.objs.Listeners.Update(&key, &val, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("seeding listener %d/%d: %w", netns, port, err)
	}
	return nil
}

// Buffered returns the bytes of unread records in the ring buffer.
func (p *Probe) Buffered() int { return p.ring.available() }
