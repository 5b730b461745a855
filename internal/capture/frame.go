package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Magic opens every capture file.
const Magic = "\x89TCPTRC\n"

// Version is the format version this package writes and the newest it
// reads. Version 2 added the timewait fields (Event.TwOp, Event.Remain)
// and Header.TimeWaitEvents, which a replay passes to
// events.Tracker.SetTimeWaitEvents; version 1 files read as before.
const Version = 2

// Record types.
const (
	recHeader  = 'H'
	recNetns   = 'N'
	recEvents  = 'E'
	recTrailer = 'T'
)

const (
	preambleLen = len(Magic) + 2
	frameHead   = 8       // type, reserved, length (4), header check (2)
	maxPayload  = 1 << 24 // larger lengths are corruption
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes a capture: what recorded it, where and when.
type Header struct {
	Format         int       `json:"format"`                    // format version of the file
	Tool           string    `json:"tool"`                      // tcptrace version that wrote it
	Host           string    `json:"host"`                      // host name
	Kernel         string    `json:"kernel"`                    // kernel release (uname -r)
	ClockOffset    int64     `json:"clock_offset"`              // wall-clock ns minus CLOCK_MONOTONIC ns (render.Clock.Offset)
	StartMono      uint64    `json:"start_mono"`                // CLOCK_MONOTONIC ns when recording started
	Start          time.Time `json:"start"`                     // wall-clock time when recording started
	Seq            int       `json:"seq"`                       // 0 for the first file of a recording, +1 per rotation
	HostNetns      uint32    `json:"host_netns"`                // the recorder's network namespace
	TimeWaitEvents bool      `json:"timewait_events,omitempty"` // the source reported timewait sockets (events.KindTimeWait); false in v1 files
	Netns          []*Netns  `json:"-"`                         // sysctls of each namespace met so far (from netns records)
}

// Unknown is the value of every sysctl of a namespace that could not be read.
const Unknown = "unknown"

// Netns holds a network namespace's TIME_WAIT sysctls: ledger.SysctlNames
// as ledger.ReadSysctls read them for the live diagnosis. Captures written
// before tcp_tw_reuse_delay was recorded lack it, as do those of kernels
// without it; diagnosis.ParseSysctls takes the kernel's default then.
type Netns struct {
	Inode   uint32            `json:"netns"`   // namespace inode (Event.Netns)
	Via     string            `json:"via"`     // how they were read: "host", "setns pid N", "setns PATH", or "" if not at all
	Sysctls map[string]string `json:"sysctls"` // net.ipv4.<name> → value, every one Unknown if the namespace was unreadable
}

// Trailer ends a cleanly closed capture file.
type Trailer struct {
	EndMono uint64        `json:"end_mono"` // CLOCK_MONOTONIC ns at the end
	End     time.Time     `json:"end"`      // wall-clock time at the end
	Events  uint64        `json:"events"`   // events in this file
	Lost    events.Losses `json:"lost"`     // final cumulative loss counters
	Rotated bool          `json:"rotated"`  // the recording went on in a newer file
}

// appendFrame appends a record of type typ holding payload to b.
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	var h [frameHead]byte
	h[0] = typ
	binary.LittleEndian.PutUint32(h[2:6], uint32(len(payload)))
	binary.LittleEndian.PutUint16(h[6:8], uint16(crc32.Checksum(h[:6], castagnoli)))
	b = append(b, h[:]...)
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
}

// errCut is returned by readFrame when the file ends inside a record.
var errCut = errors.New("cut short")

// frameReader reads records from a capture, counting them and their offsets.
type frameReader struct {
	r      io.Reader
	off    int64 // offset of the next record
	n      int   // records read, the preamble not counted
	head   [frameHead]byte
	buf    []byte
	typ    byte
	recOff int64 // offset of the record last read
}

// next reads the next record into f.typ and f.buf. It returns io.EOF at a
// clean end of file, errCut inside a record, or a checksum error.
func (f *frameReader) next() error {
	f.recOff = f.off
	n, err := io.ReadFull(f.r, f.head[:])
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return f.cut(err)
	}
	if uint16(crc32.Checksum(f.head[:6], castagnoli)) != binary.LittleEndian.Uint16(f.head[6:8]) {
		return f.errorf("record header checksum mismatch")
	}
	size := binary.LittleEndian.Uint32(f.head[2:6])
	if size > maxPayload || f.head[1] != 0 {
		return f.errorf("bad record header")
	}
	if cap(f.buf) < int(size)+4 {
		f.buf = make([]byte, size+4, max(size+4, 64<<10))
	}
	f.buf = f.buf[:size+4]
	m, err := io.ReadFull(f.r, f.buf)
	if err != nil {
		return f.cut(err)
	}
	f.off += int64(n + m)
	sum := binary.LittleEndian.Uint32(f.buf[size:])
	f.buf = f.buf[:size]
	if crc32.Checksum(f.buf, castagnoli) != sum {
		return f.errorf("checksum mismatch")
	}
	f.typ = f.head[0]
	f.n++
	return nil
}

func (f *frameReader) cut(err error) error {
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return errCut
	}
	return fmt.Errorf("reading capture record %d (byte offset %d): %w", f.n+1, f.recOff, err)
}

// errorf names the record being read.
func (f *frameReader) errorf(format string, args ...any) error {
	return fmt.Errorf("capture record %d (byte offset %d): %s", f.n+1, f.recOff, fmt.Sprintf(format, args...))
}
