package render

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/charmbracelet/lipgloss"
)

// note is one styled remark after a transition.
type note struct {
	text  string
	style *lipgloss.Style
}

// remark is a note as the per-event views keep it: its text in a reused
// buffer, its style pre-rendered (nil: unstyled).
type remark struct {
	text  []byte
	ink   *ink
	cells int  // width of text
	plain bool // printable ASCII words, one space apart: laid out as is when they fit
}

// newRemark measures text for appendWrap.
func newRemark(text []byte, k *ink) remark {
	space := true // before the text: a leading space is not plain
	for i, c := range text {
		switch {
		case c-0x21 < 0x7f-0x21: // printable ASCII other than space
			space = false
		case c == ' ' && !space:
			space = true
		default:
			return remark{text: text, ink: k, cells: measureRest(text, i)}
		}
	}
	return remark{text: text, ink: k, cells: len(text), plain: !space}
}

// measureRest returns the width of text, plain up to i.
func measureRest(text []byte, i int) int {
	for _, c := range text[i:] {
		if c >= utf8.RuneSelf || c == 0x1b {
			return cellsBytes(text)
		}
	}
	return len(text)
}

// wrap lays words of notes out in lines of at most width cells, the first
// starting with first and the rest with indent; each line is painted.
func wrap(st *styles, notes []note, first, indent string, width int) []string {
	rs := make([]remark, len(notes))
	for i, n := range notes {
		rs[i] = newRemark([]byte(n.text), st.inkOf(n.style))
	}
	b := appendWrap([]byte(first), 0, lipgloss.Width(first), indent, lipgloss.Width(indent), width, rs)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// appendWrap lays the words of rs out as wrap does, appending each line and
// a '\n'. The caller has appended the start of the first line, from b[line:]
// and firstW cells wide; later lines start with indent, indentW cells wide.
// A line that gets no words is left out, its start too.
func appendWrap(b []byte, line, firstW int, indent string, indentW, width int, rs []remark) []byte {
	n, start := firstW, firstW
	for i := range rs {
		r := &rs[i]
		if n > start && n+2+r.cells > width {
			b = append(b, '\n')
			line = len(b)
			b = append(b, indent...)
			n, start = indentW, indentW
		}
		gap := 2
		if n == start {
			gap = 0
		}
		if r.plain && n+gap+r.cells <= width { // every word fits on this line
			b = r.appendWords(appendSpaces(b, gap))
			n += gap + r.cells
			continue
		}
		for at := 0; ; gap = 1 {
			from, to := nextField(r.text, at)
			if from == to {
				break
			}
			at = to
			w := r.text[from:to]
			if n == start {
				gap = 0
			}
			ww := cellsBytes(w)
			if n+gap+ww > width && n > start {
				b = append(b, '\n')
				line = len(b)
				b = append(b, indent...)
				n, start, gap = indentW, indentW, 0
			}
			if n+ww > width {
				w = truncBytes(w, width-n)
				ww = cellsBytes(w)
			}
			b = appendSpaces(b, gap)
			if r.ink != nil {
				b = r.ink.paintBytes(b, w)
			} else {
				b = append(b, w...)
			}
			n += gap + ww
		}
	}
	if n > start {
		return append(b, '\n')
	}
	return b[:line]
}

// appendWords appends a plain remark's words, each painted.
func (r *remark) appendWords(b []byte) []byte {
	k := r.ink
	if k == nil || !k.on {
		return append(b, r.text...)
	}
	text := r.text
	for {
		i := bytes.IndexByte(text, ' ')
		if i < 0 {
			return k.paintBytes(b, text)
		}
		b = append(k.paintBytes(b, text[:i]), ' ')
		text = text[i+1:]
	}
}

// nextField returns the bounds of the first word of s at or after i, as
// strings.Fields splits (empty at the end).
func nextField(s []byte, i int) (from, to int) {
	for i < len(s) && isSpaceAt(s, i) {
		i += runeLen(s, i)
	}
	from = i
	for i < len(s) && !isSpaceAt(s, i) {
		i += runeLen(s, i)
	}
	return from, i
}

func isSpaceAt(s []byte, i int) bool {
	if c := s[i]; c < utf8.RuneSelf {
		return c == ' ' || c >= '\t' && c <= '\r'
	}
	r, _ := utf8.DecodeRune(s[i:])
	return unicode.IsSpace(r)
}

func runeLen(s []byte, i int) int {
	if s[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRune(s[i:])
	return n
}

// cellsBytes is cells for bytes, without copying them: cells keeps no
// reference to its argument.
func cellsBytes(s []byte) int {
	return cells(unsafe.String(unsafe.SliceData(s), len(s)))
}

// truncBytes is truncRight(s, w, "") for bytes.
func truncBytes(s []byte, w int) []byte {
	n, cut := 0, -1
	for i := 0; i < len(s); n++ {
		if n == w && cut < 0 {
			cut = i
		}
		c := s[i]
		if c < utf8.RuneSelf && c != 0x1b {
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if !narrowGlyph(r) {
			return []byte(truncRight(string(s), w, ""))
		}
		i += size
	}
	switch {
	case n <= w: // every rune is one cell: s is n cells wide
		return s
	case w <= 0:
		return s[:0]
	}
	return s[:cut]
}
