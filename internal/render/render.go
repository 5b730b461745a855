// Package render turns the tracker's transitions and finished connections
// into text for people and JSON lines for programs.
package render

import "github.com/tcptrace/tcptrace/internal/events"

// Options control how text is rendered.
type Options struct {
	Color    bool  // emit ANSI colour and bold (the caller checks TTY and NO_COLOR)
	Width    int   // columns to fit; 0 means 80
	Clock    Clock // maps kernel timestamps to wall-clock time
	NoHeader bool  // omit the column header line
	ASCII    bool  // use only ASCII (-> instead of →, us instead of µs)
	// Label, when set, names where a connection runs (e.g. its container)
	// on the line that carries its verdict; "" adds nothing.
	Label func(c *events.Conn) string
}

// width returns the effective width, never below minWidth.
func (o Options) width() int {
	switch {
	case o.Width <= 0:
		return 80
	case o.Width < minWidth:
		return minWidth
	}
	return o.Width
}

// minWidth is the narrowest layout rendered; narrower widths are treated as it.
const minWidth = 72
