package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

// small returns a small capture of several blocks and its events.
func small(t testing.TB) ([]byte, []events.Event) {
	t.Helper()
	evs := fixtures(t)["client_close.jsonl"]
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), evs
}

// TestTruncatedEveryOffset cuts a capture at every byte: the reader either
// refuses it (cut in the header) or returns every complete block's events
// and says where it was cut.
func TestTruncatedEveryOffset(t *testing.T) {
	data, evs := small(t)
	for n := 0; n < len(data); n++ {
		r, got, err := readAll(data[:n])
		if r == nil {
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("cut at %d: error %v", n, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", n, err)
		}
		tr := r.Truncated()
		if tr == nil {
			t.Fatalf("cut at %d: no truncation reported", n)
		}
		if tr.Offset > int64(n) || !strings.HasPrefix(tr.String(), "cut short at record ") {
			t.Fatalf("cut at %d: %v", n, tr)
		}
		sameEvents(t, got, evs[:len(got)])
		if len(got)%4 != 0 && len(got) != len(evs) {
			t.Fatalf("cut at %d: %d events, not whole blocks", n, len(got))
		}
	}
	r, got, err := readAll(data)
	if err != nil || r.Truncated() != nil || len(got) != len(evs) {
		t.Fatalf("whole file: %v %v %d", err, r.Truncated(), len(got))
	}
}

// TestFlippedBits flips each bit of a capture: every flip is caught.
func TestFlippedBits(t *testing.T) {
	data, _ := small(t)
	for i := range data {
		for bit := 0; bit < 8; bit++ {
			b := bytes.Clone(data)
			b[i] ^= 1 << bit
			_, _, err := readAll(b)
			if err == nil {
				t.Fatalf("flip byte %d bit %d: no error", i, bit)
			}
			msg := err.Error()
			if i >= preambleLen && !strings.Contains(msg, "capture record ") {
				t.Fatalf("flip byte %d bit %d: %q does not name the record", i, bit, msg)
			}
		}
	}
	b := bytes.Clone(data)
	b[len(b)-20] ^= 1
	_, _, err := readAll(b)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("flip in end record: %v", err)
	}
}

func TestBadFiles(t *testing.T) {
	data, _ := small(t)
	newer := bytes.Clone(data)
	binary.LittleEndian.PutUint16(newer[len(Magic):], Version+1)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file, not a tcptrace capture"},
		{"magic", append([]byte("#!/bin/sh\n"), data[10:]...), "not a tcptrace capture"},
		{"text", []byte("hello\n"), "not a tcptrace capture"},
		{"future", newer, fmt.Sprintf("written by a newer tcptrace (format v%d); this one reads up to v%d", Version+1, Version)},
		{"header", data[:20], "capture cut short in its header"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	data, _ := small(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(timeWaitCapture(f))
	if b, err := os.ReadFile("testdata/v1.tcpt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(Magic))
	f.Add([]byte{})
	if b, err := os.ReadFile(samplePath); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		var ev events.Event
		for i := 0; i < 1<<20; i++ {
			if r.Next(&ev) != nil {
				return
			}
		}
	})
}
