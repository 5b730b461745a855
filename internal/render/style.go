package render

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/tcptrace/tcptrace/internal/events"
)

// The palette: ANSI colours, so the terminal's theme decides the exact shade.
var (
	colorHandshake   = lipgloss.Color("6")  // cyan: LISTEN, SYN_SENT, SYN_RECV
	colorEstablished = lipgloss.Color("2")  // green
	colorClosing     = lipgloss.Color("3")  // yellow: FIN_WAIT*, CLOSE_WAIT, LAST_ACK, CLOSING
	colorTimeWait    = lipgloss.Color("13") // bright magenta
	colorClosed      = lipgloss.Color("8")  // grey: CLOSE, UNKNOWN
	colorReset       = lipgloss.Color("1")  // red
	colorActive      = lipgloss.Color("11") // bright yellow
	colorFaint       = lipgloss.Color("8")  // grey: times, header, inferred
	colorLoss        = lipgloss.Color("9")  // bright red
)

// styles holds the lipgloss styles bound to one writer's renderer. With
// colour off every style renders its text unchanged.
type styles struct {
	on                                      bool
	handshake, established, closing, closed lipgloss.Style
	timeWait, reset, active, faint, loss    lipgloss.Style
	bold, header                            lipgloss.Style
	ink                                     inks // the same, pre-rendered
}

// inks are the styles pre-rendered for the per-event views.
type inks struct {
	handshake, established, closing, closed ink
	timeWait, reset, active, faint, loss    ink
	bold                                    ink
}

// newStyles binds the palette to w, forcing the Ascii profile when colour is off.
func newStyles(w io.Writer, color bool) *styles {
	r := lipgloss.NewRenderer(w)
	if color {
		r.SetColorProfile(termenv.ANSI)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	fg := func(c lipgloss.Color) lipgloss.Style { return r.NewStyle().Foreground(c) }
	s := &styles{
		on:          color,
		handshake:   fg(colorHandshake),
		established: fg(colorEstablished),
		closing:     fg(colorClosing),
		closed:      fg(colorClosed),
		timeWait:    fg(colorTimeWait).Bold(true),
		reset:       fg(colorReset).Bold(true),
		active:      fg(colorActive).Bold(true),
		faint:       fg(colorFaint),
		loss:        fg(colorLoss).Bold(true),
		bold:        r.NewStyle().Bold(true),
		header:      r.NewStyle().Bold(true),
	}
	s.ink = inks{
		handshake: newInk(s.handshake, color), established: newInk(s.established, color),
		closing: newInk(s.closing, color), closed: newInk(s.closed, color),
		timeWait: newInk(s.timeWait, color), reset: newInk(s.reset, color),
		active: newInk(s.active, color), faint: newInk(s.faint, color),
		loss: newInk(s.loss, color), bold: newInk(s.bold, color),
	}
	return s
}

// paint renders s in st when colour is on.
func (s *styles) paint(st lipgloss.Style, text string) string {
	if !s.on || text == "" {
		return text
	}
	return st.Render(text)
}

// inkOf returns the pre-rendered ink of one of s's styles, or renders st
// afresh when it is another style; nil for nil.
func (s *styles) inkOf(st *lipgloss.Style) *ink {
	switch st {
	case nil:
		return nil
	case &s.handshake:
		return &s.ink.handshake
	case &s.established:
		return &s.ink.established
	case &s.closing:
		return &s.ink.closing
	case &s.closed:
		return &s.ink.closed
	case &s.timeWait:
		return &s.ink.timeWait
	case &s.reset:
		return &s.ink.reset
	case &s.active:
		return &s.ink.active
	case &s.faint:
		return &s.ink.faint
	case &s.loss:
		return &s.ink.loss
	case &s.bold:
		return &s.ink.bold
	}
	k := newInk(*st, s.on)
	return &k
}

// stateInk returns the ink of a state's family.
func (s *styles) stateInk(st events.State) *ink { return s.inkOf(s.stateStyle(st)) }

// state returns the style of a state's family.
func (s *styles) state(st events.State) lipgloss.Style { return *s.stateStyle(st) }

// stateStyle returns a state's family: handshake, established, closing,
// TIME_WAIT or closed.
func (s *styles) stateStyle(st events.State) *lipgloss.Style {
	switch st {
	case events.Listen, events.SynSent, events.SynRecv, events.NewSynRecv:
		return &s.handshake
	case events.Established:
		return &s.established
	case events.FinWait1, events.FinWait2, events.CloseWait, events.LastAck, events.Closing:
		return &s.closing
	case events.TimeWait:
		return &s.timeWait
	}
	return &s.closed
}
