package render

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
	"golang.org/x/sys/unix"
)

// Names of the tracker's enums, bounds-checked so that no input panics.

func roleName(r events.Role) string {
	if r > events.RoleListener {
		return "role" + strconv.Itoa(int(r))
	}
	return r.String()
}

func closerName(c events.Closer) string {
	if c > events.CloserSimultaneous {
		return "closer" + strconv.Itoa(int(c))
	}
	return c.String()
}

func endName(e events.End) string {
	if e > events.EndClosed {
		return "end" + strconv.Itoa(int(e))
	}
	return e.String()
}

func sideName(s events.Side) string {
	if s > events.SidePeer {
		return "side" + strconv.Itoa(int(s))
	}
	return s.String()
}

func sourceName(o events.OwnerSource) string {
	if o > events.OwnerProc {
		return "source" + strconv.Itoa(int(o))
	}
	return o.String()
}

// familyName returns "ipv4", "ipv6" or "af<n>".
func familyName(f uint16) string {
	switch f {
	case syscall.AF_INET:
		return "ipv4"
	case syscall.AF_INET6:
		return "ipv6"
	}
	return "af" + strconv.Itoa(int(f))
}

// errnoName returns the symbolic name of an errno ("ECONNREFUSED").
func errnoName(e uint16) string {
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return "errno" + strconv.Itoa(int(e))
}

// shortState returns a state name abbreviated for narrow layouts.
func shortState(s events.State) string {
	switch s {
	case events.Established:
		return "ESTAB"
	case events.NewSynRecv:
		return "NEW_SYN"
	}
	return s.String()
}

// appendDur appends ns in human units with about three significant digits:
// 850ns 5.39µs 27.3µs 227µs 1.00ms 2.5s 1m05s 2h03m 3d04h; "-" when ns < 0.
func appendDur(b []byte, ns int64, ascii bool) []byte {
	switch {
	case ns < 0:
		return append(b, '-')
	case ns < 1000:
		return append(appendDec(b, uint64(ns)), "ns"...)
	case ns >= 60e9:
		return appendLongDur(b, ns)
	}
	// The smallest of µs, ms and s that shows ns in three digits.
	if ns < 1e6 {
		if r, dec := durDigits((ns*100+5e2)/1e3, (ns*10+5e2)/1e3, (ns+5e2)/1e3, 1000); dec >= 0 {
			if ascii {
				return append(appendDurDigits(b, r, dec), "us"...)
			}
			return append(appendDurDigits(b, r, dec), "µs"...)
		}
	}
	if ns < 1e9 {
		if r, dec := durDigits((ns*100+5e5)/1e6, (ns*10+5e5)/1e6, (ns+5e5)/1e6, 1000); dec >= 0 {
			return append(appendDurDigits(b, r, dec), "ms"...)
		}
	}
	if r, dec := durDigits((ns*100+5e8)/1e9, (ns*10+5e8)/1e9, 1000, 600); dec >= 0 {
		return append(appendDurDigits(b, r, dec), 's')
	}
	return appendLongDur(b, ns)
}

// durDigits picks the rounding of a duration that fits three digits: r2
// (hundredths of the unit) with two decimals, r1 (tenths, below max1) with
// one, r0 with none; dec is -1 when none fits.
func durDigits(r2, r1, r0, max1 int64) (r int64, dec int) {
	switch {
	case r2 < 1000:
		return r2, 2
	case r1 < max1:
		return r1, 1
	case r0 < 1000:
		return r0, 0
	}
	return 0, -1
}

// appendDurDigits appends r with dec of its digits after a point.
func appendDurDigits(b []byte, r int64, dec int) []byte {
	switch dec {
	case 2:
		return append(appendDec(b, uint64(r/100)), '.', byte('0'+r/10%10), byte('0'+r%10))
	case 1:
		return append(appendDec(b, uint64(r/10)), '.', byte('0'+r%10))
	}
	return appendDec(b, uint64(r))
}

// appendLongDur appends a duration of a minute or more in two units.
func appendLongDur(b []byte, ns int64) []byte {
	sec := ns / 1e9
	if ns%1e9 >= 5e8 {
		sec++
	}
	switch {
	case sec < 3600:
		return appendPair(b, sec/60, 'm', sec%60, 's')
	case sec < 86400:
		min := (sec + 30) / 60
		return appendPair(b, min/60, 'h', min%60, 'm')
	}
	h := (sec + 1800) / 3600
	return appendPair(b, h/24, 'd', h%24, 'h')
}

func appendPair(b []byte, hi int64, hu byte, lo int64, lu byte) []byte {
	b = appendDec(b, uint64(hi))
	b = append(b, hu, byte('0'+lo/10), byte('0'+lo%10), lu)
	return b
}

// formatDur returns appendDur's text as a string.
func formatDur(ns int64, ascii bool) string {
	return string(appendDur(make([]byte, 0, 8), ns, ascii))
}

// endpoint formats addr:port, IPv6 in brackets, "*" for port 0 and for an
// unspecified address with port 0 (a listener's remote end).
func endpoint(a netip.Addr, port uint16) string {
	return string(appendEndpoint(make([]byte, 0, 24), a, port, nil))
}

// portText formats a port, "*" for 0.
func portText(p uint16) string {
	if p == 0 {
		return "*"
	}
	return strconv.Itoa(int(p))
}

// sanitize replaces control characters and invalid UTF-8 with '?', so that
// kernel-supplied names cannot move the cursor or inject escape codes.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// printable classifies bytes: printable ASCII, and of that what a JSON
// string holds as is.
var printable = func() (t [256]uint8) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = textSafe | jsonSafe
	}
	t['"'], t['\\'] = textSafe, textSafe
	return t
}()

// Classes of printable.
const (
	textSafe uint8 = 1 << iota // printable ASCII
	jsonSafe                   // printable ASCII other than " and \
)

// cells returns the terminal width of plain text.
func cells(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf && c != 0x1b {
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !narrowGlyph(r) {
			return lipgloss.Width(s) // escapes, wide or combining runes
		}
		n++
		i += size
	}
	return n
}

// narrowGlyph reports whether r is one of the one-cell symbols the views
// draw with, so measuring a line needs no grapheme segmentation.
func narrowGlyph(r rune) bool {
	switch r {
	case '→', '←', 'µ', '…', '└', '─', '│', '┄', '◆', '▶', '◀', '×', '·', '—', '╭', '╮', '╰', '╯', '├', '┤', '┬', '┴', '┼':
		return true
	}
	return false
}

// truncRight cuts s to at most w cells, marking the cut with ell.
func truncRight(s string, w int, ell string) string {
	if cells(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	keep := w - cells(ell)
	var sb strings.Builder
	n := 0
	for _, r := range s {
		rw := cells(string(r))
		if n+rw > keep {
			break
		}
		sb.WriteRune(r)
		n += rw
	}
	if keep < 0 {
		return truncRight(ell, w, "")
	}
	return sb.String() + ell
}

// truncLeft cuts s to at most w cells by dropping its start, marked with ell.
func truncLeft(s string, w int, ell string) string {
	if cells(s) <= w {
		return s
	}
	keep := w - cells(ell)
	if keep < 0 {
		return truncRight(ell, w, "")
	}
	rs := []rune(s)
	n, i := 0, len(rs)
	for i > 0 {
		rw := cells(string(rs[i-1]))
		if n+rw > keep {
			break
		}
		n += rw
		i--
	}
	return ell + string(rs[i:])
}

// pad appends spaces to s (of visible width n cells) up to w cells.
func pad(s string, n, w int) string {
	if n >= w {
		return s
	}
	return s + strings.Repeat(" ", w-n)
}

// padLeft prepends spaces to s (of visible width n cells) up to w cells.
func padLeft(s string, n, w int) string {
	if n >= w {
		return s
	}
	return strings.Repeat(" ", w-n) + s
}
