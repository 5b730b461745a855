package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// StartTracer starts cmd (a tcptrace) and waits, up to 20 s, for the line
// on its standard error that says it traces. Its standard output goes to
// stdout unless cmd has one; its standard error is collected in stderr.
// wait waits for it to exit and for its standard error to be read; the
// process is killed at the test's end.
func StartTracer(t testing.TB, cmd *exec.Cmd) (stdout, stderr *bytes.Buffer, wait func() error) {
	t.Helper()
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	if cmd.Stdout == nil {
		cmd.Stdout = stdout
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var mu sync.Mutex
	ready, done := WatchReady(pr, func(l string) {
		mu.Lock()
		stderr.WriteString(l + "\n")
		mu.Unlock()
	})
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			<-done
			t.Fatalf("tcptrace did not start: %s", stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("tcptrace did not start within 20s: %s", stderr)
	}
	return stdout, stderr, func() error {
		err := cmd.Wait()
		<-done
		return err
	}
}
