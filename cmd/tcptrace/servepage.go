package main

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/render/report"
)

// Timing of serve's live page.
const (
	pageRefresh = 5           // seconds between the browser's reloads
	pageWatched = time.Minute // the page is rendered while requested this recently
	pageWait    = 3 * time.Second
)

// livePage is serve's page at /: the HTML report of the agent's own
// state. The pipeline's goroutine renders it at its diagnosis refresh
// while someone looks (a request in the last pageWatched); requests get
// the latest rendering.
type livePage struct {
	watched atomic.Bool // requested in the last pageWatched: its ladders collect connections
	mu      sync.Mutex
	wanted  time.Time     // the latest request
	html    []byte        // the latest rendering
	fresh   chan struct{} // closed by the next rendering
	shapes  *ladder.Collector
	host    string
	kernel  string
}

func newLivePage() *livePage {
	lp := &livePage{fresh: make(chan struct{})}
	lp.host, lp.kernel = thisHost()
	return lp
}

// update renders the page from rep when it is being watched. It runs on
// the pipeline's goroutine.
func (lp *livePage) update(p *pipeline.Pipeline, rep *diagnosis.Report, wall wallClock, label func(uint32) string) {
	lp.mu.Lock()
	watched := time.Since(lp.wanted) < pageWatched
	lp.mu.Unlock()
	lp.watched.Store(watched)
	if !watched {
		return
	}
	in := htmlInput(lp.shapes, p, rep, wall)
	in.Title, in.Source, in.Host, in.Kernel = "tcptrace serve", "live", lp.host, lp.kernel
	in.Refresh, in.ProcLabel = pageRefresh, label
	in.Links = [][2]string{{"/metrics", "metrics"}, {"/healthz", "health"}}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, in, rep); err != nil {
		b.Reset()
		b.WriteString("<!DOCTYPE html><title>tcptrace</title><p>" + err.Error())
	}
	lp.mu.Lock()
	lp.html = b.Bytes()
	close(lp.fresh)
	lp.fresh = make(chan struct{})
	lp.mu.Unlock()
}

// ServeHTTP answers with the latest rendering, waiting for the first one
// up to pageWait.
func (lp *livePage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lp.mu.Lock()
	lp.wanted = time.Now()
	page, fresh := lp.html, lp.fresh
	lp.mu.Unlock()
	lp.watched.Store(true)
	if page == nil {
		select {
		case <-fresh:
		case <-time.After(pageWait):
		case <-r.Context().Done():
			return
		}
		lp.mu.Lock()
		page = lp.html
		lp.mu.Unlock()
	}
	if page == nil {
		w.Header().Set("Retry-After", "2")
		http.Error(w, "tcptrace: the page is being prepared; reload in a moment", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}
