package style

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
)

// Dur formats ns in human units with about three significant digits:
// 850ns 5.39µs 27.3µs 227µs 1.00ms 2.5s 1m05s 2h03m 3d04h; "-" when ns < 0.
func Dur(ns int64, ascii bool) string {
	b, _ := AppendDur(nil, ns, ascii)
	return string(b)
}

// AppendDur appends Dur(ns, ascii) and returns its width in cells.
func AppendDur(b []byte, ns int64, ascii bool) ([]byte, int) {
	at := len(b)
	micro, microW := "µs", 2
	if ascii {
		micro = "us"
	}
	switch {
	case ns < 0:
		return append(b, '-'), 1
	case ns < 1000:
		b = append(strconv.AppendInt(b, ns, 10), "ns"...)
		return b, len(b) - at
	case ns >= 60e9:
		b = appendLongDur(b, ns)
		return b, len(b) - at
	}
	// The smallest of µs, ms and s that shows ns in three digits.
	if ns < 1e6 {
		if d, ok := appendDigits(b, (ns*100+5e2)/1e3, (ns*10+5e2)/1e3, (ns+5e2)/1e3, 1000); ok {
			return append(d, micro...), len(d) - at + microW
		}
	}
	if ns < 1e9 {
		if d, ok := appendDigits(b, (ns*100+5e5)/1e6, (ns*10+5e5)/1e6, (ns+5e5)/1e6, 1000); ok {
			d = append(d, "ms"...)
			return d, len(d) - at
		}
	}
	if d, ok := appendDigits(b, (ns*100+5e8)/1e9, (ns*10+5e8)/1e9, 1000, 600); ok {
		d = append(d, 's')
		return d, len(d) - at
	}
	b = appendLongDur(b, ns)
	return b, len(b) - at
}

// appendDigits appends the rounding of a duration that fits three digits:
// r2 (hundredths of the unit) with two decimals, r1 (tenths, below max1)
// with one, r0 with none; false, and b as it was, when none fits.
func appendDigits(b []byte, r2, r1, r0, max1 int64) ([]byte, bool) {
	switch {
	case r2 < 1000:
		return append(strconv.AppendInt(b, r2/100, 10), '.', byte('0'+r2/10%10), byte('0'+r2%10)), true
	case r1 < max1:
		return append(strconv.AppendInt(b, r1/10, 10), '.', byte('0'+r1%10)), true
	case r0 < 1000:
		return strconv.AppendInt(b, r0, 10), true
	}
	return b, false
}

// appendLongDur appends a duration of a minute or more in two units.
func appendLongDur(b []byte, ns int64) []byte {
	sec := ns / 1e9
	if ns%1e9 >= 5e8 {
		sec++
	}
	pair := func(hi int64, hu string, lo int64, lu string) []byte {
		b = append(strconv.AppendInt(b, hi, 10), hu...)
		return append(append(b, byte('0'+lo/10), byte('0'+lo%10)), lu...)
	}
	switch {
	case sec < 3600:
		return pair(sec/60, "m", sec%60, "s")
	case sec < 86400:
		min := (sec + 30) / 60
		return pair(min/60, "h", min%60, "m")
	}
	h := (sec + 1800) / 3600
	return pair(h/24, "d", h%24, "h")
}

// Endpoint formats addr:port, IPv6 in brackets, "*" for port 0 and for an
// unspecified address with port 0 (a listener's remote end).
func Endpoint(a netip.Addr, port uint16) string { return string(AppendEndpoint(nil, a, port)) }

// AppendEndpoint appends Endpoint(a, port).
func AppendEndpoint(b []byte, a netip.Addr, port uint16) []byte {
	switch {
	case port == 0 && (!a.IsValid() || a.IsUnspecified()):
		return append(b, '*')
	case !a.IsValid():
		b = append(b, '*')
	case a.Is6():
		b = append(a.AppendTo(append(b, '[')), ']')
	default:
		b = a.AppendTo(b)
	}
	return AppendPort(append(b, ':'), port)
}

// PortText formats a port, "*" for 0.
func PortText(p uint16) string { return string(AppendPort(nil, p)) }

// AppendPort appends PortText(p).
func AppendPort(b []byte, p uint16) []byte {
	if p == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(p), 10)
}

// Addr formats an address, "" when there is none.
func Addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Cells returns the terminal width of s (escape codes take none): a cell
// per byte of printable ASCII, lipgloss's measure for anything else.
func Cells[S string | []byte](s S) int {
	if ascii(s) {
		return len(s)
	}
	return lipgloss.Width(string(s))
}

// ascii reports whether s is printable ASCII only, a cell per byte.
func ascii[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// decodeRune returns the rune at s[i] and its size in bytes, as ranging
// over a string does (an invalid byte is utf8.RuneError of size 1).
func decodeRune[S string | []byte](s S, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
}

// Mark is a text that marks a cut, with its width in cells.
type Mark struct {
	Text  string
	Cells int
}

// NewMark measures the mark text.
func NewMark(text string) Mark { return Mark{Text: text, Cells: Cells(text)} }

// TruncRight cuts s to at most w cells, marking the cut with ell.
func TruncRight(s string, w int, ell string) string {
	if Cells(s) <= w {
		return s
	}
	b, _ := AppendTruncRight(nil, s, w, NewMark(ell))
	return string(b)
}

// AppendTruncRight appends TruncRight(s, w, ell.Text) and returns its
// width (of a cut text, what is kept of s measured alone, and the mark).
// Invalid UTF-8 in a cut text becomes U+FFFD.
func AppendTruncRight[S string | []byte](b []byte, s S, w int, ell Mark) ([]byte, int) {
	if n := Cells(s); n <= w {
		return append(b, s...), n
	}
	if w <= 0 {
		return b, 0
	}
	keep := w - ell.Cells
	if keep < 0 {
		return AppendTruncRight(b, ell.Text, w, Mark{})
	}
	if ascii(s) { // a cell per byte
		return append(append(b, s[:keep]...), ell.Text...), w
	}
	at := len(b)
	for i, n := 0, 0; i < len(s); {
		r, size := decodeRune(s, i)
		rw := Cells(string(r))
		if n+rw > keep {
			break
		}
		b = utf8.AppendRune(b, r)
		n += rw
		i += size
	}
	kept := Cells(b[at:])
	return append(b, ell.Text...), kept + ell.Cells
}

// TruncLeft cuts s to at most w cells by dropping its start, marked with ell.
func TruncLeft(s string, w int, ell string) string {
	if Cells(s) <= w {
		return s
	}
	b, _ := AppendTruncLeft(nil, s, w, NewMark(ell))
	return string(b)
}

// AppendTruncLeft appends TruncLeft(s, w, ell.Text) and returns its width
// (of a cut text, the mark and what is kept of s measured alone). Invalid
// UTF-8 in a cut text becomes U+FFFD.
func AppendTruncLeft[S string | []byte](b []byte, s S, w int, ell Mark) ([]byte, int) {
	left := Cells(s)
	if left <= w {
		return append(b, s...), left
	}
	keep := w - ell.Cells
	if keep < 0 {
		return AppendTruncRight(b, ell.Text, w, Mark{})
	}
	if ascii(s) { // a cell per byte
		return append(append(b, ell.Text...), s[len(s)-keep:]...), w
	}
	// Keep the longest end of s that fits: drop runes from its start
	// until what is left is at most keep cells.
	left = 0
	for i := 0; i < len(s); {
		r, size := decodeRune(s, i)
		left += Cells(string(r))
		i += size
	}
	i := 0
	for i < len(s) && left > keep {
		r, size := decodeRune(s, i)
		left -= Cells(string(r))
		i += size
	}
	b = append(b, ell.Text...)
	at := len(b)
	for i < len(s) {
		r, size := decodeRune(s, i)
		b = utf8.AppendRune(b, r)
		i += size
	}
	return b, ell.Cells + Cells(b[at:])
}

// Pad appends spaces to s, of visible width n cells, up to w cells.
func Pad(s string, n, w int) string {
	if n >= w {
		return s
	}
	return s + strings.Repeat(" ", w-n)
}

// PadLeft prepends spaces to s, of visible width n cells, up to w cells.
func PadLeft(s string, n, w int) string {
	if n >= w {
		return s
	}
	return strings.Repeat(" ", w-n) + s
}

// spaces is a run of spaces to pad from.
const spaces = "                                                                "

// AppendSpaces appends n spaces (none when n <= 0).
func AppendSpaces(b []byte, n int) []byte {
	for ; n > len(spaces); n -= len(spaces) {
		b = append(b, spaces...)
	}
	if n > 0 {
		b = append(b, spaces[:n]...)
	}
	return b
}

// Grouped formats n with thousands separators: 12,345.
func Grouped(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
