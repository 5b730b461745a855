// Package style is what every rendering of tcptrace shares: the options,
// the palette, and the formatting of durations, endpoints, names and
// wrapped remarks.
package style

import (
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Options control how text is rendered.
type Options struct {
	Color    bool       // emit ANSI colour and bold (the caller checks TTY and NO_COLOR)
	Width    int        // columns to fit; 0 means 80
	Clock    clock.Wall // maps kernel timestamps to wall-clock time
	NoHeader bool       // omit the column header line
	ASCII    bool       // use only ASCII (-> instead of →, us instead of µs)
	// Pipe says the output is not a terminal (the caller checks isatty):
	// it is read by grep, awk and less, so nothing is cut or abbreviated
	// (a column too narrow for its text widens the line instead) and one
	// record is one line. False keeps the terminal's layout.
	Pipe bool
	// Label, when set, names where a connection runs (e.g. its container)
	// on the line that carries its verdict; "" adds nothing.
	Label func(c *events.Conn) string
}

// MinWidth is the narrowest layout rendered; narrower widths are treated as it.
const MinWidth = 72

// Columns returns the width to fit: 80 when unset, never below MinWidth.
func (o Options) Columns() int {
	switch {
	case o.Width <= 0:
		return 80
	case o.Width < MinWidth:
		return MinWidth
	}
	return o.Width
}

// Arrow is what stands between two endpoints or states in prose.
func (o Options) Arrow() string {
	if o.ASCII {
		return "->"
	}
	return "→"
}

// TimeWaitHold is how long Linux keeps a TIME_WAIT socket (TCP_TIMEWAIT_LEN).
const TimeWaitHold = "60s"

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

// Styles are the palette's lipgloss styles bound to one writer. With
// colour off, Paint leaves every text as it is.
type Styles struct {
	On          bool           // colour is on
	Handshake   lipgloss.Style // LISTEN, SYN_SENT, SYN_RECV
	Established lipgloss.Style // ESTABLISHED
	Closing     lipgloss.Style // FIN_WAIT*, CLOSE_WAIT, LAST_ACK, CLOSING
	Closed      lipgloss.Style // CLOSE and unknown states
	TimeWait    lipgloss.Style // TIME_WAIT and what holds it
	Reset       lipgloss.Style // resets and refusals
	Active      lipgloss.Style // the active closer
	Faint       lipgloss.Style // times, inferred steps, asides
	Loss        lipgloss.Style // lost events and warnings
	Bold        lipgloss.Style // verdicts and labels
	Header      lipgloss.Style // headers and titles
}

// New binds the palette to w, with the Ascii profile when colour is off.
func New(w io.Writer, color bool) *Styles {
	r := lipgloss.NewRenderer(w)
	if color {
		r.SetColorProfile(termenv.ANSI)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	fg := func(c lipgloss.Color) lipgloss.Style { return r.NewStyle().Foreground(c) }
	return &Styles{
		On:          color,
		Handshake:   fg(colorHandshake),
		Established: fg(colorEstablished),
		Closing:     fg(colorClosing),
		Closed:      fg(colorClosed),
		TimeWait:    fg(colorTimeWait).Bold(true),
		Reset:       fg(colorReset).Bold(true),
		Active:      fg(colorActive).Bold(true),
		Faint:       fg(colorFaint),
		Loss:        fg(colorLoss).Bold(true),
		Bold:        r.NewStyle().Bold(true),
		Header:      r.NewStyle().Bold(true),
	}
}

// Paint renders text in st when colour is on.
func (s *Styles) Paint(st lipgloss.Style, text string) string {
	if !s.On || text == "" {
		return text
	}
	return st.Render(text)
}

// Ink is a style as the escape codes that open and close it, for views
// that append their lines to a buffer. The zero Ink paints nothing.
type Ink struct {
	open, close string
}

// Ink renders st once into the codes around a text, as Paint paints it
// (none with colour off). Painting with it is painting with Paint for a
// text of one line without tabs, in a style of colours and attributes
// (no width, padding, border or margin): every style of the palette.
func (s *Styles) Ink(st lipgloss.Style) Ink {
	if !s.On {
		return Ink{}
	}
	open, close, _ := strings.Cut(st.Render("x"), "x")
	return Ink{open: open, close: close}
}

// Paint appends text painted in k; nothing for an empty text.
func (k Ink) Paint(b []byte, text string) []byte {
	if text == "" || k.open == "" && k.close == "" {
		return append(b, text...)
	}
	return append(append(append(b, k.open...), text...), k.close...)
}

// Open appends the codes that start k, for a text appended in place; Close
// appends those that end it. The text between them must not be empty.
func (k Ink) Open(b []byte) []byte {
	if k.open == "" {
		return b
	}
	return append(b, k.open...)
}

// Close appends the codes that end k (see Open).
func (k Ink) Close(b []byte) []byte {
	if k.close == "" {
		return b
	}
	return append(b, k.close...)
}

// State returns the style of a state's family: handshake, established,
// closing, TIME_WAIT or closed.
func (s *Styles) State(st events.State) lipgloss.Style {
	switch st {
	case events.Listen, events.SynSent, events.SynRecv, events.NewSynRecv:
		return s.Handshake
	case events.Established:
		return s.Established
	case events.FinWait1, events.FinWait2, events.CloseWait, events.LastAck, events.Closing:
		return s.Closing
	case events.TimeWait:
		return s.TimeWait
	}
	return s.Closed
}
