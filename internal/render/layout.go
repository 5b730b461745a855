package render

import (
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// Column widths of the text view. The connection column takes what is left.
const (
	timeW     = len("15:04:05.000000")
	durW      = 6  // "27.3µs"
	narrowPID = 5  // grows into the comm column for longer PIDs
	widePID   = 7  // pid_max is at most 4194304
	narrowCom = 7  // "python3"
	wideCom   = 15 // the kernel's TASK_COMM_LEN - 1
	cookieW   = 10
	netnsW    = 10
	wideAt    = 100 // widths from here on get the wide layout
	extraAt   = 140 // and from here on the cookie and netns columns
)

// layout is the column plan for one width.
type layout struct {
	width      int
	narrow     bool
	pid, comm  int
	cookie     bool // cookie and netns columns shown
	conn       int
	trans      int    // flag + OLD arrow NEW
	arrow      string // between states and between endpoints
	ell        string // marks an elision
	branch     string // starts a continuation line
	dash       string // an em dash in prose
	contIndent int    // where continuation lines start
}

// newLayout plans the columns for o.
func newLayout(o Options) layout {
	l := layout{width: o.width(), arrow: "→", ell: "…", branch: "└ ", dash: "—"}
	if o.ASCII {
		l.arrow, l.ell, l.branch, l.dash = "->", "~", "`-", "--"
	}
	l.narrow = l.width < wideAt
	longest := 10 + 8 // CLOSE_WAIT LAST_ACK, FIN_WAIT1 FIN_WAIT2, FIN_WAIT2 TIME_WAIT (arrow added below)
	if l.narrow {
		l.pid, l.comm = narrowPID, narrowCom
	} else {
		l.arrow = " " + l.arrow + " "
		l.pid, l.comm = widePID, wideCom
		longest = 11 + 10 // ESTABLISHED → CLOSE_WAIT
		l.cookie = l.width >= extraAt
	}
	l.trans = 1 + longest + cells(l.arrow)
	fixed := timeW + l.pid + l.comm + durW + l.trans + 5
	if l.cookie {
		fixed += cookieW + netnsW + 2
	}
	l.conn = l.width - fixed
	// Wide layouts keep room for short remarks inline: a typical IPv4 pair
	// fits 33 cells, longer ones lose their local address first.
	connMax := cells("127.0.0.1:42100 → 127.0.0.1:59567")
	if l.cookie {
		connMax = 2*len("255.255.255.255:65535") + cells(l.arrow)
	}
	if !l.narrow && l.conn > connMax {
		l.conn = connMax
	}
	l.contIndent = timeW + 1
	return l
}

// endpoints renders "local → remote" into at most l.conn cells, dropping the
// local address (keeping its port) and then the start of the remote host.
func (l *layout) endpoints(local, lport, remote string) string {
	full := local + l.arrow + remote
	if cells(full) <= l.conn {
		return full
	}
	head := ":" + lport + l.arrow
	if cells(head)+cells(remote) <= l.conn {
		return head + remote
	}
	if room := l.conn - cells(head); room >= 6 {
		return head + truncLeft(remote, room, l.ell)
	}
	return truncRight(full, l.conn, l.ell)
}

// note is one styled remark after a transition.
type note struct {
	text  string
	style *lipgloss.Style
}

// wrap lays words of notes out in lines of at most width cells, the first
// starting with first and the rest with indent; each line is painted.
func wrap(st *styles, notes []note, first, indent string, width int) []string {
	var lines []string
	var cur strings.Builder
	cur.WriteString(first)
	n := lipgloss.Width(first)
	start := n
	for _, nt := range notes {
		words := strings.Fields(nt.text)
		if n > start && n+2+cells(nt.text) > width {
			lines = append(lines, cur.String())
			cur.Reset()
			cur.WriteString(indent)
			n, start = lipgloss.Width(indent), lipgloss.Width(indent)
		}
		for i, w := range words {
			gap := 1
			if i == 0 {
				gap = 2
			}
			if n == start {
				gap = 0
			}
			ww := cells(w)
			if n+gap+ww > width && n > start {
				lines = append(lines, cur.String())
				cur.Reset()
				cur.WriteString(indent)
				n, start, gap = lipgloss.Width(indent), lipgloss.Width(indent), 0
			}
			if n+ww > width {
				w = truncRight(w, width-n, "")
				ww = cells(w)
			}
			cur.WriteString(strings.Repeat(" ", gap))
			if nt.style != nil {
				cur.WriteString(st.paint(*nt.style, w))
			} else {
				cur.WriteString(w)
			}
			n += gap + ww
		}
	}
	if n > start {
		lines = append(lines, cur.String())
	}
	return lines
}

// itoa formats an unsigned number.
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
