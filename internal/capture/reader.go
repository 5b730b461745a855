package capture

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Truncation says where a capture that was not closed cleanly (killed,
// disk full, power lost) ends: every record before it was read.
type Truncation struct {
	Record int    // number of the first missing or incomplete record (the header is 1)
	Offset int64  // its byte offset
	Events uint64 // events read before it
}

// String returns "cut short at record N (byte offset X)".
func (t *Truncation) String() string {
	return fmt.Sprintf("cut short at record %d (byte offset %d)", t.Record, t.Offset)
}

// Reader replays a capture. It implements events.Source and needs no
// privileges.
type Reader struct {
	fr      frameReader
	in      *bufio.Reader // fr's input
	file    *os.File
	hdr     Header
	dec     *decoder
	left    uint64 // events left in the current block
	trailer *Trailer
	cut     *Truncation
	lost    events.Losses
	events  uint64
	err     error // sticky: io.EOF at the end
}

var _ events.Source = (*Reader)(nil)

// Open opens the capture file at path and reads its header.
func Open(path string) (*Reader, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a tcptrace capture", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.file = f
	return r, nil
}

// NewReader reads a capture's header from in, which need not seek: a
// capture is read front to back, from a file or a stream alike.
func NewReader(in io.Reader) (*Reader, error) {
	r := &Reader{in: bufio.NewReaderSize(in, 256<<10)}
	r.fr.r = r.in
	var pre [preambleLen]byte
	n, err := io.ReadFull(r.fr.r, pre[:])
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		return nil, errors.New("empty file, not a tcptrace capture")
	case n < len(Magic) && string(pre[:n]) == Magic[:n]:
		return nil, fmt.Errorf("capture cut short in its header (byte offset %d)", n)
	case n < len(Magic) || string(pre[:len(Magic)]) != Magic:
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("reading capture header: %w", err)
		}
		return nil, errors.New("not a tcptrace capture")
	case err != nil:
		return nil, fmt.Errorf("capture cut short in its header (byte offset %d)", n)
	}
	v := int(binary.LittleEndian.Uint16(pre[len(Magic):]))
	if v > Version {
		return nil, fmt.Errorf("written by a newer tcptrace (format v%d); this one reads up to v%d", v, Version)
	}
	if v == 0 {
		return nil, errors.New("bad capture format version 0")
	}
	r.dec = newDecoder(v)
	r.fr.off = int64(preambleLen)
	switch err := r.fr.next(); {
	case err == io.EOF || err == errCut:
		return nil, fmt.Errorf("capture cut short in its header (byte offset %d)", r.fr.recOff)
	case err != nil:
		return nil, err
	}
	if r.fr.typ != recHeader {
		return nil, r.fr.errorf("header record missing")
	}
	if err := json.Unmarshal(r.fr.buf, &r.hdr); err != nil {
		return nil, fmt.Errorf("reading capture header: %w", err)
	}
	r.hdr.Format = v
	// Read the namespaces that follow the header, so Header has them;
	// an error is returned by Next, after the header was shown.
	for r.left == 0 {
		known := len(r.hdr.Netns)
		if r.err = r.record(); r.err != nil || len(r.hdr.Netns) == known {
			break
		}
	}
	return r, nil
}

// Header returns the capture's header. Its Netns holds the namespaces
// recorded so far: those known at the start, then more as Next meets them.
func (r *Reader) Header() *Header { return &r.hdr }

// Trailer returns the end record, or nil if the capture was cut short (or
// not yet read to its end).
func (r *Reader) Trailer() *Trailer { return r.trailer }

// Truncated returns where the capture was cut short, or nil if it ended
// with its end record (known once Next has returned io.EOF).
func (r *Reader) Truncated() *Truncation { return r.cut }

// Losses returns the final loss counters: the end record's, or those of the
// last loss notice read if the capture was cut short.
func (r *Reader) Losses() events.Losses {
	if r.trailer != nil {
		return r.trailer.Lost
	}
	return r.lost
}

// Buffered reports whether the next event, or part of it, has been read
// from the input already: when not, Next waits for the input (a stream's
// writer).
func (r *Reader) Buffered() bool { return r.left > 0 || r.in.Buffered() > 0 }

// Events returns the events read so far.
func (r *Reader) Events() uint64 { return r.events }

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}

// Next fills ev with the next recorded event. It returns io.EOF at the end
// (check Truncated), or an error naming the damaged record.
func (r *Reader) Next(ev *events.Event) error {
	for {
		if r.left > 0 {
			r.left--
			if err := r.dec.decode(ev); err != nil {
				r.err = r.recordError(err)
				r.left = 0
				return r.err
			}
			r.events++
			if ev.Kind == events.KindLoss {
				r.lost = ev.Lost
			}
			return nil
		}
		if r.err != nil {
			return r.err
		}
		if len(r.dec.b) != 0 {
			r.err = r.recordError(errors.New("bytes left over after its events"))
			return r.err
		}
		if err := r.record(); err != nil {
			r.err = err
			return err
		}
	}
}

// record reads the next record that is not an event block's events.
func (r *Reader) record() error {
	err := r.fr.next()
	if err == io.EOF || err == errCut {
		r.cut = &Truncation{Record: r.fr.n + 1, Offset: r.fr.recOff, Events: r.events}
		return io.EOF
	}
	if err != nil {
		return err
	}
	switch r.fr.typ {
	case recEvents:
		n, k := binary.Uvarint(r.fr.buf)
		if k <= 0 || n == 0 || n > uint64(len(r.fr.buf)-k) {
			return r.recordError(errors.New("bad event count"))
		}
		r.left, r.dec.b = n, r.fr.buf[k:]
	case recNetns:
		n := new(Netns)
		if err := json.Unmarshal(r.fr.buf, n); err != nil {
			return r.recordError(fmt.Errorf("bad namespace record: %w", err))
		}
		r.hdr.Netns = append(r.hdr.Netns, n)
	case recTrailer:
		t := new(Trailer)
		if err := json.Unmarshal(r.fr.buf, t); err != nil {
			return r.recordError(fmt.Errorf("bad end record: %w", err))
		}
		r.trailer = t
		return io.EOF
	case recHeader:
		return r.recordError(errors.New("a second header"))
	}
	// Other record types are skipped: later minor additions.
	return nil
}

// recordError names the record last read.
func (r *Reader) recordError(err error) error {
	return fmt.Errorf("capture record %d (byte offset %d): %w", r.fr.n, r.fr.recOff, err)
}
