package testutil

import (
	"bufio"
	"io"
	"strings"
)

// ReadyLine is what tcptrace prints on stderr once it is tracing.
const ReadyLine = "tracing TCP state changes"

// WatchReady reads a tracer's stderr line by line, passing each line to
// line. ready receives, once, whether ReadyLine came before the stream
// ended; done closes when it ends.
func WatchReady(r io.Reader, line func(string)) (ready <-chan bool, done <-chan struct{}) {
	rc, dc := make(chan bool, 1), make(chan struct{})
	go func() {
		defer close(dc)
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			line(sc.Text())
			if !sent && strings.Contains(sc.Text(), ReadyLine) {
				rc <- true
				sent = true
			}
		}
		if !sent {
			rc <- false
		}
	}()
	return rc, dc
}
