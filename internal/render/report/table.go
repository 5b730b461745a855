package report

import (
	"strings"

	"github.com/tcptrace/tcptrace/internal/render/style"
)

// column is a table's column: its header and whether its cells are text
// that may wrap at spaces. Numbers never wrap; headers wrap at spaces.
type column struct {
	head string
	wrap bool
}

func num(head string) column  { return column{head: head} }
func text(head string) column { return column{head: head, wrap: true} }

// box is a border's characters: corners and joints, top to bottom.
type box struct {
	h, v                               string
	tl, tm, tr, ml, mm, mr, bl, bm, br string
}

var (
	roundBox = box{"─", "│", "╭", "┬", "╮", "├", "┼", "┤", "╰", "┴", "╯"}
	asciiBox = box{"-", "|", "+", "+", "+", "+", "+", "+", "+", "+", "+"}
)

// minCell is the narrowest a wrapped column is made when even its longest
// word does not fit; longer words are then broken.
const minCell = 6

// fitTable lays rows out under cols within width cells: at natural widths
// when they fit, else with text cells and headers wrapped, else split into
// several tables that each repeat the first column. Every cell is shown
// whole: nothing is cut. In a pipe (for grep and awk) no cell wraps: a row
// stays on one line of each table, and a table too wide for one column
// beside the first widens the line.
func fitTable(cols []column, rows [][]string, width int, ascii, pipe bool) string {
	nat, low := make([]int, len(cols)), make([]int, len(cols))
	for i, c := range cols {
		nat[i], low[i] = longestLine(c.head), longestWord(c.head)
		for _, r := range rows {
			nat[i] = max(nat[i], style.Cells(r[i]))
			if c.wrap {
				low[i] = max(low[i], longestWord(r[i]))
			} else {
				low[i] = max(low[i], style.Cells(r[i]))
			}
		}
		if pipe {
			low[i] = nat[i]
		}
	}
	groups := split(nat, width)
	if g := split(low, width); len(g) < len(groups) {
		groups = g
	}
	bx := roundBox
	if ascii {
		bx = asciiBox
	}
	var b strings.Builder
	for _, g := range groups {
		drawTable(&b, cols, rows, g, widths(g, cols, nat, low, width, pipe), bx)
	}
	return b.String()
}

// split groups the columns after the first so that each group, with the
// first column before it, fits width at the widths w.
func split(w []int, width int) [][]int {
	var groups [][]int
	g, used := []int{0}, 1+w[0]+3
	for i := 1; i < len(w); i++ {
		if len(g) > 1 && used+w[i]+3 > width {
			groups = append(groups, g)
			g, used = []int{0}, 1+w[0]+3
		}
		g, used = append(g, i), used+w[i]+3
	}
	return append(groups, g)
}

// widths gives the columns of group g their widths within width: natural
// when they fit, else wrapped text columns share what is left, the
// neediest first; in a pipe, natural.
func widths(g []int, cols []column, nat, low []int, width int, pipe bool) []int {
	avail := width - 1 - 3*len(g)
	w, sum := make([]int, len(g)), 0
	for j, i := range g {
		w[j], sum = nat[i], sum+nat[i]
	}
	if sum <= avail || pipe {
		return w
	}
	sum = 0
	for j, i := range g {
		w[j], sum = low[i], sum+low[i]
	}
	for sum < avail { // give a cell to the column that lacks the most
		best := -1
		for j, i := range g {
			if nat[i]-w[j] > 0 && (best < 0 || nat[i]-w[j] > nat[g[best]]-w[best]) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		w[best]++
		sum++
	}
	for sum > avail { // still too wide: break the widest text column's words
		best := -1
		for j, i := range g {
			if cols[i].wrap && w[j] > minCell && (best < 0 || w[j] > w[best]) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		w[best]--
		sum--
	}
	return w
}

// drawTable draws the columns g of rows at widths w.
func drawTable(b *strings.Builder, cols []column, rows [][]string, g, w []int, bx box) {
	rule := func(l, m, r string) {
		b.WriteString(l)
		for j := range g {
			if j > 0 {
				b.WriteString(m)
			}
			b.WriteString(strings.Repeat(bx.h, w[j]+2))
		}
		b.WriteString(r + "\n")
	}
	line := func(cells []string) {
		lines := make([][]string, len(g))
		height := 0
		for j, c := range cells {
			lines[j] = wrapText(c, w[j])
			height = max(height, len(lines[j]))
		}
		for k := 0; k < height; k++ {
			b.WriteString(bx.v)
			for j := range g {
				s := ""
				if k < len(lines[j]) {
					s = lines[j][k]
				}
				b.WriteString(" " + style.Pad(s, style.Cells(s), w[j]) + " " + bx.v)
			}
			b.WriteString("\n")
		}
	}
	pick := func(r []string, head bool) []string {
		out := make([]string, len(g))
		for j, i := range g {
			if head {
				out[j] = cols[i].head
			} else {
				out[j] = r[i]
			}
		}
		return out
	}
	rule(bx.tl, bx.tm, bx.tr)
	line(pick(nil, true))
	rule(bx.ml, bx.mm, bx.mr)
	for _, r := range rows {
		line(pick(r, false))
	}
	rule(bx.bl, bx.bm, bx.br)
}

// words splits s at spaces, keeping a word that starts with "×" (or "x"
// and a digit, in ASCII) or "(" with the word before it ("10.0.0.1:80 ×3",
// "curl (42)").
func words(s string) []string {
	var out []string
	for _, f := range strings.Split(s, " ") {
		if f == "" {
			continue
		}
		if n := len(out); n > 0 && (strings.HasPrefix(f, "×") || strings.HasPrefix(f, "(") || isCount(f)) {
			out[n-1] += " " + f
			continue
		}
		out = append(out, f)
	}
	return out
}

// isCount reports whether f is "x" and digits.
func isCount(f string) bool {
	return len(f) > 1 && f[0] == 'x' && f[1] >= '0' && f[1] <= '9' && strings.Trim(f[1:], "0123456789,") == ""
}

func longestWord(s string) int {
	n := 0
	for _, w := range words(s) {
		n = max(n, style.Cells(w))
	}
	return n
}

func longestLine(s string) int { return style.Cells(s) }

// wrapText breaks s into lines of at most w cells at spaces; a word wider
// than w is broken.
func wrapText(s string, w int) []string {
	if style.Cells(s) <= w {
		return []string{s}
	}
	var lines []string
	cur := ""
	for _, wd := range words(s) {
		for style.Cells(wd) > w { // break a word wider than a line
			if cur != "" {
				lines, cur = append(lines, cur), ""
			}
			head, rest := cutCells(wd, w)
			lines, wd = append(lines, head), rest
		}
		switch {
		case cur == "":
			cur = wd
		case style.Cells(cur)+1+style.Cells(wd) <= w:
			cur += " " + wd
		default:
			lines, cur = append(lines, cur), wd
		}
	}
	if cur != "" || len(lines) == 0 {
		lines = append(lines, cur)
	}
	return lines
}

// cutCells splits s after its first w cells.
func cutCells(s string, w int) (string, string) {
	n := 0
	for i, r := range s {
		if n+style.Cells(string(r)) > w {
			return s[:i], s[i:]
		}
		n += style.Cells(string(r))
	}
	return s, ""
}

// wrapPara wraps s to width, its first line after first and the others
// after indent.
func wrapPara(first, indent, s string, width int) string {
	lines := wrapText(s, max(width-style.Cells(first), minCell))
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString(first + l + "\n")
		} else {
			b.WriteString(indent + l + "\n")
		}
	}
	return b.String()
}
