package testutil

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Screen is a terminal screen for tests of full-screen programs: it keeps
// the text a program drew, interpreting the cursor moves and erases a
// terminal would (CUP, CUU/CUD/CUF/CUB, EL, ED, CR, LF) and ignoring
// colours, modes and OSC strings. Queries are left to the caller.
type Screen struct {
	w, h  int
	cells [][]rune
	r, c  int
	rest  []byte // an escape sequence or a rune cut at the end of a write
}

// NewScreen returns a blank screen of w columns and h rows.
func NewScreen(w, h int) *Screen {
	s := &Screen{w: w, h: h}
	s.clear(0, h)
	return s
}

func (s *Screen) clear(from, to int) {
	if s.cells == nil {
		s.cells = make([][]rune, s.h)
	}
	for i := from; i < to && i < s.h; i++ {
		s.cells[i] = []rune(strings.Repeat(" ", s.w))
	}
}

// String returns the screen's rows, trailing blanks cut, one per line.
func (s *Screen) String() string {
	rows := make([]string, s.h)
	for i, row := range s.cells {
		rows[i] = strings.TrimRight(string(row), " ")
	}
	return strings.Join(rows, "\n")
}

// Write draws b.
func (s *Screen) Write(b []byte) (int, error) {
	n := len(b)
	b = append(s.rest, b...)
	s.rest = nil
	for len(b) > 0 {
		switch b[0] {
		case '\r':
			s.c = 0
			b = b[1:]
		case '\n':
			s.r = min(s.r+1, s.h-1)
			b = b[1:]
		case 0x1b:
			used := s.escape(b)
			if used == 0 {
				s.rest = append([]byte(nil), b...)
				return n, nil
			}
			b = b[used:]
		default:
			if b[0] < 0x20 {
				b = b[1:]
				continue
			}
			if !utf8.FullRune(b) {
				s.rest = append([]byte(nil), b...)
				return n, nil
			}
			ru, size := utf8.DecodeRune(b)
			b = b[size:]
			if s.c < s.w {
				s.cells[s.r][s.c] = ru
			}
			s.c++
		}
	}
	return n, nil
}

// escape interprets the sequence at b and returns its length, 0 when it
// is cut short.
func (s *Screen) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case ']': // OSC: to BEL or ST
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return 0
	case '[':
	default:
		return 2
	}
	i := 2
	for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
		i++
	}
	if i >= len(b) {
		return 0
	}
	params, final := string(b[2:i]), b[i]
	if strings.HasPrefix(params, "?") || strings.HasPrefix(params, ">") {
		return i + 1 // private modes
	}
	var ps []int
	for _, p := range strings.Split(params, ";") {
		v, _ := strconv.Atoi(p)
		ps = append(ps, v)
	}
	arg := func(k, def int) int {
		if k < len(ps) && ps[k] > 0 {
			return ps[k]
		}
		return def
	}
	switch final {
	case 'A':
		s.r = max(s.r-arg(0, 1), 0)
	case 'B':
		s.r = min(s.r+arg(0, 1), s.h-1)
	case 'C':
		s.c = min(s.c+arg(0, 1), s.w-1)
	case 'D':
		s.c = max(s.c-arg(0, 1), 0)
	case 'E':
		s.r, s.c = min(s.r+arg(0, 1), s.h-1), 0
	case 'F':
		s.r, s.c = max(s.r-arg(0, 1), 0), 0
	case 'G':
		s.c = min(arg(0, 1)-1, s.w-1)
	case 'H', 'f':
		s.r, s.c = min(arg(0, 1)-1, s.h-1), min(arg(1, 1)-1, s.w-1)
	case 'K':
		row := s.cells[s.r]
		from, to := s.c, s.w
		switch arg(0, 0) {
		case 1:
			from, to = 0, s.c+1
		case 2:
			from = 0
		}
		for x := from; x < to && x < s.w; x++ {
			row[x] = ' '
		}
	case 'J':
		switch arg(0, 0) {
		case 0:
			for x := s.c; x < s.w; x++ {
				s.cells[s.r][x] = ' '
			}
			s.clear(s.r+1, s.h)
		case 2, 3:
			s.clear(0, s.h)
		}
	}
	return i + 1
}
