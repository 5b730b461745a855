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

	// Derived for the per-event path.
	arrowW, ellW int    // cells of arrow and ell
	cont         string // starts the first continuation line: indent and branch
	contRest     string // starts the other continuation lines
	contW        int    // cells of cont
	contRestW    int    // cells of contRest
	fixed        int    // cells of a line's columns before OLD→NEW
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
	l.arrowW, l.ellW = cells(l.arrow), cells(l.ell)
	indent := strings.Repeat(" ", l.contIndent)
	l.cont, l.contRest = indent+l.branch, indent+strings.Repeat(" ", cells(l.branch))
	l.contW, l.contRestW = lipgloss.Width(l.cont), lipgloss.Width(l.contRest)
	l.fixed = timeW + 1 + l.pid + 1 + l.comm + 1 + l.conn + 1 + durW + 1 + 1
	if l.cookie {
		l.fixed += cookieW + netnsW + 2
	}
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

// itoa formats an unsigned number.
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
