package render

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// ink is a lipgloss style rendered once into the escape codes that open and
// close it, so the per-event views paint by appending bytes. With colour off
// both are empty. A style whose rendering is not such a simple wrap (none in
// the palette) is kept and rendered by lipgloss each time. The texts painted
// hold no tab or newline, which lipgloss would expand or split.
type ink struct {
	pre, post string
	raw       *lipgloss.Style // when set, paint with lipgloss
	on        bool            // paints anything at all
}

// inkProbe checks that a style only wraps text: words, spaces and glyphs.
const inkProbe = "a b-1.5:*→…└"

// newInk pre-renders st, as styles.paint would paint with colour on or off.
func newInk(st lipgloss.Style, on bool) ink {
	if !on {
		return ink{}
	}
	r := st.Render("x")
	i := strings.IndexByte(r, 'x')
	if i < 0 {
		return ink{raw: &st, on: true}
	}
	k := ink{pre: r[:i], post: r[i+1:]}
	if st.Render(inkProbe) != k.pre+inkProbe+k.post {
		return ink{raw: &st, on: true}
	}
	k.on = k.pre != "" || k.post != ""
	return k
}

// begin opens the ink at the end of b; end closes it over what was
// appended since len(b) was start, painting nothing when nothing was.
func (k *ink) begin(b []byte) []byte {
	if !k.on {
		return b
	}
	return append(b, k.pre...)
}

// end closes what begin opened at start (the length of b before begin).
func (k *ink) end(b []byte, start int) []byte {
	switch {
	case !k.on:
		return b
	case len(b) == start+len(k.pre):
		return b[:start] // empty text is painted as nothing
	case k.raw != nil:
		return append(b[:start], k.raw.Render(string(b[start:]))...)
	}
	return append(b, k.post...)
}

// paint appends text painted in k.
func (k *ink) paint(b []byte, text string) []byte {
	if !k.on {
		return append(b, text...)
	}
	start := len(b)
	b = append(k.begin(b), text...)
	return k.end(b, start)
}

// paintBytes appends text painted in k.
func (k *ink) paintBytes(b []byte, text []byte) []byte {
	if !k.on {
		return append(b, text...)
	}
	start := len(b)
	b = append(k.begin(b), text...)
	return k.end(b, start)
}
