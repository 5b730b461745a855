package diagram

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// The diagram palette, on top of the shared state colours.
var (
	colorArrow    = lipgloss.Color("7")  // segments: light grey
	colorLabel    = lipgloss.Color("15") // segment names: bright white
	colorInferred = lipgloss.Color("8")  // the inferred peer: grey, italic
	colorTitle    = lipgloss.Color("12") // the title line: bright blue
)

// glyphs are the characters a diagram is drawn with.
type glyphs struct {
	line, dash  string // a real and an inferred segment's shaft
	right, left string // arrow heads
	column      string // a side's timeline
	mark        string // the active closer's mark
	times, ell  string // "×" of counts, elision
	arrow       string // between endpoints
}

var (
	unicodeGlyphs = glyphs{line: "─", dash: "┄", right: "▶", left: "◀", column: "│", mark: "◆",
		times: "×", ell: "…", arrow: " → "}
	asciiGlyphs = glyphs{line: "-", dash: ".", right: ">", left: "<", column: "|", mark: "*",
		times: "x", ell: "~", arrow: " -> "}
)

// styles are the diagram's styles bound to one writer.
type styles struct {
	*style.Styles
	arrow, label, inferred, title lipgloss.Style
	g                             glyphs
}

// newStyles binds the diagram palette to w.
func newStyles(w io.Writer, o style.Options) *styles {
	s := style.New(w, o.Color)
	d := &styles{Styles: s, g: unicodeGlyphs}
	if o.ASCII {
		d.g = asciiGlyphs
	}
	d.arrow = s.Faint.Foreground(colorArrow).Bold(false)
	d.label = s.Bold.Foreground(colorLabel)
	d.inferred = s.Faint.Foreground(colorInferred).Italic(true)
	d.title = s.Bold.Foreground(colorTitle)
	return d
}

// stateStyle is the style of a state cell, dim and italic when inferred.
func (d *styles) stateStyle(st events.State, inferred bool) lipgloss.Style {
	if inferred {
		return d.inferred
	}
	return d.State(st)
}
