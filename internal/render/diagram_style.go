package render

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
)

// The diagram palette, on top of style.go's state colours.
var (
	colorDiagramArrow    = lipgloss.Color("7")  // segments: light grey
	colorDiagramLabel    = lipgloss.Color("15") // segment names: bright white
	colorDiagramInferred = lipgloss.Color("8")  // the inferred peer: grey, italic
	colorDiagramTitle    = lipgloss.Color("12") // the title line: bright blue
)

// glyphs are the characters a diagram is drawn with.
type glyphs struct {
	line, dash     string // a real and an inferred segment's shaft
	right, left    string // arrow heads
	column         string // a side's timeline
	mark           string // the active closer's mark
	times, ell     string // "×" of counts, elision
	arrow, bullets string // between endpoints; footer bullet
}

var (
	unicodeGlyphs = glyphs{line: "─", dash: "┄", right: "▶", left: "◀", column: "│", mark: "◆",
		times: "×", ell: "…", arrow: " → ", bullets: "·"}
	asciiGlyphs = glyphs{line: "-", dash: ".", right: ">", left: "<", column: "|", mark: "*",
		times: "x", ell: "~", arrow: " -> ", bullets: "-"}
)

// dstyles are the diagram's styles bound to one writer.
type dstyles struct {
	*styles
	arrow, label, inferred, title lipgloss.Style
	g                             glyphs
}

// newDiagramStyles binds the diagram palette to w.
func newDiagramStyles(w io.Writer, o Options) *dstyles {
	s := newStyles(w, o.Color)
	d := &dstyles{styles: s, g: unicodeGlyphs}
	if o.ASCII {
		d.g = asciiGlyphs
	}
	d.arrow = s.faint.Foreground(colorDiagramArrow).Bold(false)
	d.label = s.bold.Foreground(colorDiagramLabel)
	d.inferred = s.faint.Foreground(colorDiagramInferred).Italic(true)
	d.title = s.bold.Foreground(colorDiagramTitle)
	return d
}

// stateStyle is the style of a state cell, dim and italic when inferred.
func (d *dstyles) stateStyle(st events.State, inferred bool) lipgloss.Style {
	if inferred {
		return d.inferred
	}
	return d.state(st)
}
