package capture

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// Defaults for Options.
const (
	DefaultBlockSize  = 64 << 10         // encoded events buffered before a block is written
	DefaultFlushAfter = int64(1e9)       // event-time span after which a block is written
	MinRotateSize     = 64 << 10         // smallest Options.RotateSize
	blockSlack        = DefaultBlockSize // room kept past BlockSize
)

// Options configure a Writer.
type Options struct {
	Overwrite   bool   // replace an existing file (Create refuses otherwise)
	RotateSize  int64  // start a new file once one reaches this many bytes; 0 never
	RotateCount int    // files kept when rotating: FILE, FILE.1, ... FILE.<n-1>; 0 all
	Tool        string // version of the recording tool
	ClockOffset int64  // wall-clock ns minus CLOCK_MONOTONIC ns; measured now if 0
	StartMono   uint64 // CLOCK_MONOTONIC ns the recording started; now if 0
	BlockSize   int    // DefaultBlockSize if 0
	Proc        string // proc filesystem to find namespaces in; "/proc" if ""
	// TimeWaitEvents: the source reports timewait sockets
	// (events.KindTimeWait); recorded in the header for replays.
	TimeWaitEvents bool
	// Lookup, when set, replaces reading a namespace's sysctls (tests).
	Lookup func(netns uint32, pids ...uint32) *Netns
}

// Writer records an event stream to a capture file. It is not safe for
// concurrent use.
type Writer struct {
	opts    Options
	path    string   // "" when writing to a stream
	file    *os.File // nil when writing to a stream
	out     io.Writer
	hdr     Header
	enc     *encoder
	block   []byte // encoded events of the pending block
	count   uint64 // events in block
	first   uint64 // time of the block's first event
	frame   []byte
	payload []byte
	netns   []*Netns
	seen    map[uint32]bool
	lastNs  uint32
	lost    events.Losses
	endMono uint64
	events  uint64 // events in the current file
	written uint64 // events in every file
	size    int64  // bytes in the current file
	err     error  // sticky write error
	closed  bool
}

// Create creates a capture file at path with mode 0600. It refuses to
// replace an existing file (or, when rotating, an older rotated one) unless
// opts.Overwrite is set, with an error that is os.ErrExist (errors.Is).
func Create(path string, opts Options) (*Writer, error) {
	if opts.RotateSize != 0 && opts.RotateSize < MinRotateSize {
		return nil, fmt.Errorf("rotate size %d: must be at least %d bytes", opts.RotateSize, MinRotateSize)
	}
	if opts.RotateCount < 0 {
		return nil, fmt.Errorf("rotate count %d: must not be negative", opts.RotateCount)
	}
	if opts.RotateSize > 0 && !opts.Overwrite {
		if _, err := os.Lstat(rotated(path, 1)); err == nil {
			return nil, existsError{rotated(path, 1) + " exists (from an earlier recording?): move it away or overwrite it"}
		}
	}
	w := newWriter(opts)
	w.path = path
	if err := w.open(0); err != nil {
		return nil, err
	}
	return w, nil
}

// NewWriter writes a capture to out, a stream that need not seek (a
// pipe, standard output): each block is written as it is flushed, the end
// record at Close, which neither syncs nor closes out. A stream is not
// rotated (opts.RotateSize must be 0) and nothing is overwritten
// (opts.Overwrite is ignored).
func NewWriter(out io.Writer, opts Options) (*Writer, error) {
	if opts.RotateSize != 0 {
		return nil, errors.New("a stream cannot be rotated: rotation needs a file")
	}
	w := newWriter(opts)
	w.out = out
	if err := w.start(0); err != nil {
		return nil, err
	}
	return w, nil
}

func newWriter(opts Options) *Writer {
	if opts.BlockSize <= 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.ClockOffset == 0 {
		opts.ClockOffset = time.Now().UnixNano() - int64(clock.Mono())
	}
	w := &Writer{opts: opts, enc: newEncoder(), seen: map[uint32]bool{}}
	w.block = make([]byte, 0, opts.BlockSize+blockSlack)
	now := time.Now()
	w.hdr = Header{
		Format: Version, Tool: opts.Tool, ClockOffset: opts.ClockOffset,
		Start: now, StartMono: uint64(now.UnixNano() - opts.ClockOffset),
		TimeWaitEvents: opts.TimeWaitEvents,
	}
	if opts.StartMono != 0 {
		w.hdr.StartMono = opts.StartMono
		w.hdr.Start = time.Unix(0, int64(opts.StartMono)+opts.ClockOffset)
	}
	w.hdr.Host, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		w.hdr.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	w.hdr.HostNetns = ledger.NetnsInode(filepath.Join(opts.Proc, "self", "ns", "net"))
	return w
}

// existsError is Create's refusal to replace a file: errors.Is(err,
// os.ErrExist) tells it from other errors.
type existsError struct{ msg string }

// Error says which file exists.
func (e existsError) Error() string { return e.msg }

// Is matches os.ErrExist.
func (e existsError) Is(target error) bool { return target == os.ErrExist }

// open creates file number seq of the recording at w.path.
func (w *Writer) open(seq int) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if w.opts.Overwrite {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(w.path, flag, 0o600)
	if errors.Is(err, os.ErrExist) {
		return existsError{w.path + " exists: refusing to overwrite it"}
	}
	if err != nil {
		return fmt.Errorf("creating capture: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("creating capture: %w", err)
	}
	w.file, w.out = f, f
	return w.start(seq)
}

// start writes the preamble, header and known namespaces of file seq.
func (w *Writer) start(seq int) error {
	w.enc.reset()
	w.events, w.size = 0, 0
	w.hdr.Seq = seq
	hdr, _ := json.Marshal(&w.hdr)
	w.frame = append(append(w.frame[:0], Magic...), byte(Version), byte(Version>>8))
	w.frame = appendFrame(w.frame, recHeader, hdr)
	if seq == 0 && w.hdr.HostNetns != 0 {
		w.seen[w.hdr.HostNetns] = true
		w.lastNs = w.hdr.HostNetns
		w.netns = append(w.netns, w.lookup(w.hdr.HostNetns))
	}
	for _, n := range w.netns {
		b, _ := json.Marshal(n)
		w.frame = appendFrame(w.frame, recNetns, b)
	}
	return w.put(w.frame)
}

func (w *Writer) lookup(ns uint32, pids ...uint32) *Netns {
	if w.opts.Lookup != nil {
		return w.opts.Lookup(ns, pids...)
	}
	return lookupNetns(w.opts.Proc, w.hdr.HostNetns, ns, pids...)
}

// put writes b to the file.
func (w *Writer) put(b []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.out.Write(b)
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("writing capture: %w", err)
	}
	return w.err
}

// Write records ev. Loss notices (events.KindLoss) are recorded in place and
// their counters kept for the end record. A transition or timewait step in
// a namespace not met before first records the namespace's sysctls.
func (w *Writer) Write(ev *events.Event) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("writing capture: writer closed")
	}
	if ev.Netns != w.lastNs && (ev.Kind == events.KindTransition || ev.Kind == events.KindTimeWait) {
		if err := w.newNetns(ev); err != nil {
			return err
		}
	}
	if ev.Kind == events.KindLoss {
		w.lost = ev.Lost
	}
	if w.count == 0 {
		w.first = ev.Time
	}
	w.block = w.enc.encode(w.block, ev)
	w.count++
	w.events++
	w.written++
	if len(w.block) >= w.opts.BlockSize || int64(ev.Time-w.first) > DefaultFlushAfter {
		return w.Flush()
	}
	return nil
}

// newNetns records the sysctls of ev's namespace the first time it is seen.
func (w *Writer) newNetns(ev *events.Event) error {
	w.lastNs = ev.Netns
	if w.seen[ev.Netns] {
		return nil
	}
	w.seen[ev.Netns] = true
	n := w.lookup(ev.Netns, ev.PID, ev.TaskPID)
	w.netns = append(w.netns, n)
	if err := w.flushBlock(); err != nil {
		return err
	}
	b, _ := json.Marshal(n)
	w.frame = appendFrame(w.frame[:0], recNetns, b)
	return w.put(w.frame)
}

// Flush writes the pending events as a block, then rotates if the file is
// full. Call it when the source is idle so a crash loses little.
func (w *Writer) Flush() error {
	if err := w.flushBlock(); err != nil {
		return err
	}
	if w.file != nil && w.opts.RotateSize > 0 && w.size >= w.opts.RotateSize {
		return w.rotate()
	}
	return nil
}

func (w *Writer) flushBlock() error {
	if w.count == 0 || w.err != nil {
		return w.err
	}
	w.payload = append(binary.AppendUvarint(w.payload[:0], w.count), w.block...)
	w.frame = appendFrame(w.frame[:0], recEvents, w.payload)
	w.block, w.count = w.block[:0], 0
	return w.put(w.frame)
}

// SetLosses sets the final loss counters of the end record (by default
// those of the last loss notice written).
func (w *Writer) SetLosses(l events.Losses) { w.lost = l }

// SetEnd sets the CLOCK_MONOTONIC ns the recording ended, for the end
// record (default: when Close runs), so a replay's duration is the live run's.
func (w *Writer) SetEnd(mono uint64) { w.endMono = mono }

// Events returns the events written to the current file.
func (w *Writer) Events() uint64 { return w.events }

// Written returns the events written since the recording began, rotated
// files included.
func (w *Writer) Written() uint64 { return w.written }

// end writes the end record and, for a file, syncs and closes it.
func (w *Writer) end(rotated bool) error {
	if err := w.flushBlock(); err != nil {
		return err
	}
	now := time.Now()
	t := Trailer{EndMono: uint64(now.UnixNano() - w.opts.ClockOffset), End: now, Events: w.events, Lost: w.lost, Rotated: rotated}
	if w.endMono != 0 && !rotated {
		t.EndMono, t.End = w.endMono, time.Unix(0, int64(w.endMono)+w.opts.ClockOffset)
	}
	b, _ := json.Marshal(&t)
	w.frame = appendFrame(w.frame[:0], recTrailer, b)
	err := w.put(w.frame)
	if w.file != nil {
		if e := w.file.Sync(); e != nil && err == nil {
			err = fmt.Errorf("syncing capture: %w", e)
		}
		if e := w.file.Close(); e != nil && err == nil {
			err = fmt.Errorf("closing capture: %w", e)
		}
		w.file = nil
	}
	return err
}

// Close writes the pending events and the end record, syncs and closes the
// file. It is safe to call twice.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if err := w.end(false); err != nil {
		w.err = err
		return err
	}
	return nil
}

// rotate ends the current file, shifts FILE → FILE.1 → ... dropping the
// oldest, and starts a new FILE.
func (w *Writer) rotate() error {
	if err := w.end(true); err != nil {
		return err
	}
	n := w.opts.RotateCount
	if n == 0 {
		for n = 1; ; n++ {
			if _, err := os.Lstat(rotated(w.path, n)); err != nil {
				break
			}
		}
		n++
	}
	if err := os.Remove(rotated(w.path, n-1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.err = fmt.Errorf("rotating capture: %w", err)
		return w.err
	}
	for i := n - 2; i >= 0; i-- {
		if err := os.Rename(rotated(w.path, i), rotated(w.path, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.err = fmt.Errorf("rotating capture: %w", err)
			return w.err
		}
	}
	if err := w.open(w.hdr.Seq + 1); err != nil {
		w.err = err
	}
	return w.err
}

// rotated returns the name of the i-th older file of a recording.
func rotated(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}
