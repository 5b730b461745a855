package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

const envKillChild = "TCPTRACE_CAPTURE_KILL_CHILD" // file the child records to

// TestKillChild is not a test: it is the recording process of
// TestKilledRecording, writing the churn fixture in a loop until killed.
func TestKillChild(t *testing.T) {
	path := os.Getenv(envKillChild)
	if path == "" {
		return
	}
	evs := fixtures(t)["churn.jsonl"]
	w, err := Create(path, testOptions())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		if err := w.Write(&evs[i%len(evs)]); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		if i%50 == 49 {
			_ = w.Flush()
		}
	}
}

// TestKilledRecording kills a recording process with SIGKILL mid-stream and
// replays what it wrote.
func TestKilledRecording(t *testing.T) {
	path := filepath.Join(t.TempDir(), "killed.tcpt")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envKillChild+"="+path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("child wrote less than 2 MiB in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	evs := fixtures(t)["churn.jsonl"]
	var ev events.Event
	n := 0
	for ; ; n++ {
		err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		if ev != evs[n%len(evs)] {
			t.Fatalf("event %d differs", n)
		}
	}
	if r.Truncated() == nil || r.Trailer() != nil || n == 0 || n%50 != 0 {
		t.Fatalf("%d events, truncated %v, trailer %v", n, r.Truncated(), r.Trailer())
	}
	t.Logf("%d events replayed; %v", n, r.Truncated())
}

func TestCreateModeAndOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.tcpt")
	w, err := Create(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if _, err := Create(path, testOptions()); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") || !errors.Is(err, os.ErrExist) {
		t.Fatalf("second create: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.Overwrite = true
	w, err = Create(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("overwritten mode %v", st.Mode())
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.tcpt")
	opts := testOptions()
	opts.RotateSize, opts.RotateCount, opts.BlockSize = MinRotateSize, 3, 4096
	w, err := Create(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	evs := churnStream(t, 60)
	for i := range evs {
		if err := w.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(path + "*")
	if len(names) != 3 {
		t.Fatalf("files %v, want 3", names)
	}
	var seqs []int
	var total uint64
	for i := 2; i >= 0; i-- {
		p := rotated(path, i)
		st, err := os.Stat(p)
		if err != nil || st.Size() > MinRotateSize+8192 || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, st.Size(), err)
		}
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.Event
		n := 0
		for ; r.Next(&ev) == nil; n++ {
		}
		if r.Trailer() == nil || r.Trailer().Rotated != (i > 0) || len(r.Header().Netns) != 1 || n == 0 {
			t.Fatalf("%s: trailer %+v netns %d, %d events", p, r.Trailer(), len(r.Header().Netns), n)
		}
		seqs = append(seqs, r.Header().Seq)
		total += uint64(n)
		r.Close()
	}
	if seqs[0]+1 != seqs[1] || seqs[1]+1 != seqs[2] || seqs[0] == 0 {
		t.Fatalf("seqs %v", seqs)
	}
	if _, err := Create(path, opts); err == nil {
		t.Fatal("create over a rotated recording succeeded")
	}
	t.Logf("%d files kept, newest seq %d, %d events in them", len(names), seqs[2], total)
}
