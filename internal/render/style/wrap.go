package style

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
)

// Note is one remark, painted in its style (nil: unstyled).
type Note struct {
	Text  string
	Style *lipgloss.Style
}

// Inked is a remark as AppendWrap lays it out: its text, painted in its
// ink, measured once by NewInked.
type Inked struct {
	text   []byte
	ink    Ink
	cells  int  // the width of text
	ascii  bool // text is printable ASCII (see ascii): its only white space is the space
	spaced bool // and it is words one space apart, nothing else
}

// NewInked measures text, painted in k, for AppendWrap.
func NewInked(text []byte, k Ink) Inked {
	n := Inked{text: text, ink: k, ascii: true, spaced: len(text) > 0 && text[0] != ' '}
	for i, c := range text {
		if c < ' ' || c > '~' {
			n.ascii, n.spaced, n.cells = false, false, Cells(text)
			return n
		}
		if c == ' ' && (i+1 == len(text) || text[i+1] == ' ') {
			n.spaced = false
		}
	}
	n.cells = len(text)
	return n
}

// Cells returns the width of the remark's text.
func (n Inked) Cells() int { return n.cells }

// Append appends the remark whole, painted in its ink, on the line b ends
// with: for output that is never wrapped (Options.Pipe).
func (n Inked) Append(b []byte) []byte {
	if len(n.text) == 0 {
		return b
	}
	return n.ink.Close(append(n.ink.Open(b), n.text...))
}

// Wrap lays the words of notes out in lines of at most width cells, the
// first line starting with first and the others with indent, as AppendWrap
// does, and returns the lines. A line that gets no words is left out.
func Wrap(st *Styles, notes []Note, first, indent string, width int) []string {
	inked := make([]Inked, len(notes))
	for i, n := range notes {
		var k Ink
		if n.Style != nil {
			k = st.Ink(*n.Style)
		}
		inked[i] = NewInked([]byte(n.Text), k)
	}
	b := AppendWrap([]byte(first), 0, Cells(first), inked, indent, width)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// AppendWrap appends the words of notes laid out in lines of at most width
// cells, each line ended with a newline. The first line is b[from:], of
// firstW cells, continued; the others start with indent. Notes are two
// spaces apart and words one; a note that does not fit on the rest of a
// line starts the next, and a word wider than a line is cut. Each word is
// painted in its note's ink. A line that gets no words is left out, the
// first line's start b[from:] too.
func AppendWrap(b []byte, from, firstW int, notes []Inked, indent string, width int) []byte {
	n, start := firstW, firstW
	newLine := func() {
		b = append(b, '\n')
		from = len(b)
		b = append(b, indent...)
		n = Cells(indent)
		start = n
	}
	for i := range notes {
		note := &notes[i]
		if n > start && n+2+note.cells > width {
			newLine()
		}
		gap := 2
		if n == start {
			gap = 0
		}
		if note.spaced && n+gap+note.cells <= width { // the words fit as they are
			b = note.ink.paintWords(AppendSpaces(b, gap), note.text)
			n += gap + note.cells
			continue
		}
		for at := 0; ; gap = 1 {
			w, next := nextWord(note.text, at, note.ascii)
			if len(w) == 0 {
				break
			}
			at = next
			if n == start {
				gap = 0
			}
			ww := len(w)
			if !note.ascii {
				ww = Cells(w)
			}
			if n+gap+ww > width && n > start {
				newLine()
				gap = 0
			}
			if n+ww > width { // a word wider than a line
				w, ww = AppendTruncRight(nil, w, width-n, Mark{})
			}
			b = AppendSpaces(b, gap)
			if len(w) > 0 {
				b = note.ink.Close(append(note.ink.Open(b), w...))
			}
			n += gap + ww
		}
	}
	if n > start {
		return append(b, '\n')
	}
	return b[:from]
}

// paintWords appends the words of spaced text, each painted in k.
func (k Ink) paintWords(b, text []byte) []byte {
	if k == (Ink{}) {
		return append(b, text...)
	}
	for {
		i := bytes.IndexByte(text, ' ')
		if i < 0 {
			return k.Close(append(k.Open(b), text...))
		}
		b = append(k.Close(append(k.Open(b), text[:i]...)), ' ')
		text = text[i+1:]
	}
}

// nextWord returns the first word of s at or after i, as strings.Fields
// splits s, and where the search for the next one starts. In printable
// ASCII (see ascii) the only white space is the space.
func nextWord(s []byte, i int, ascii bool) (word []byte, next int) {
	if ascii {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		end := bytes.IndexByte(s[i:], ' ')
		if end < 0 {
			return s[i:], len(s)
		}
		return s[i : i+end], i + end
	}
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf && asciiSpace[c] {
			i++
			continue
		}
		if r, size := utf8.DecodeRune(s[i:]); r >= utf8.RuneSelf && unicode.IsSpace(r) {
			i += size
			continue
		}
		break
	}
	from := i
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiSpace[c] {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if unicode.IsSpace(r) {
			break
		}
		i += size
	}
	return s[from:i], i
}

// asciiSpace marks the ASCII white space.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}
