package stream

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
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
	width     int
	narrow    bool
	pipe      bool // off a terminal: nothing cut or abbreviated, one line per record
	pid, comm int
	cookie    bool // cookie and netns columns shown
	conn      int
	arrow     string // between states and between endpoints
	arrowW    int    // its cells
	ell       style.Mark
	dash      string // an em dash in prose
	cont      string // starts the first continuation line: indent and branch
	contW     int    // its cells
	contRest  string // starts the other continuation lines
	fixed     int    // cells of a line's columns before OLD→NEW
}

// newLayout plans the columns for o.
func newLayout(o style.Options) layout {
	l := layout{width: o.Columns(), pipe: o.Pipe, arrow: "→", ell: style.NewMark("…"), dash: "—"}
	branch := "└ "
	if o.ASCII {
		l.arrow, l.ell, l.dash, branch = "->", style.NewMark("~"), "--", "`-"
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
	l.arrowW = style.Cells(l.arrow)
	trans := 1 + longest + l.arrowW // flag, OLD, arrow, NEW
	fixed := timeW + l.pid + l.comm + durW + trans + 5
	if l.cookie {
		fixed += cookieW + netnsW + 2
	}
	l.conn = l.width - fixed
	// Wide layouts keep room for short remarks inline: a typical IPv4 pair
	// fits 33 cells, longer ones lose their local address first.
	connMax := style.Cells("127.0.0.1:42100 → 127.0.0.1:59567")
	if l.cookie {
		connMax = 2*len("255.255.255.255:65535") + l.arrowW
	}
	if !l.narrow && l.conn > connMax {
		l.conn = connMax
	}
	if l.pipe {
		// Off a terminal nothing is cut: columns as wide as a PID, a
		// command name and an IPv4 pair get, so lines stay aligned, wider
		// than the width when they must; longer texts widen their line.
		if l.narrow {
			connMax = style.Cells("127.0.0.1:42100→127.0.0.1:59567")
		}
		l.conn = max(l.conn, connMax)
		l.pid, l.comm = widePID, wideCom
	}
	indent := strings.Repeat(" ", timeW+1)
	l.cont, l.contRest = indent+branch, indent+strings.Repeat(" ", style.Cells(branch))
	l.contW = style.Cells(l.cont)
	l.fixed = timeW + 1 + l.pid + 1 + l.comm + 1 + l.conn + 1 + durW + 1 + 1
	if l.cookie {
		l.fixed += cookieW + netnsW + 2
	}
	return l
}

// ends is what the COOKIE, NETNS and LOCAL→REMOTE columns show: all they read.
type ends struct {
	cookie       uint64
	netns        uint32
	saddr, daddr netip.Addr
	sport, dport uint16
}

// appendEnds appends the COOKIE and NETNS columns when shown, and the
// LOCAL→REMOTE column: "local → remote" in at most l.conn cells (dropping
// the local address but its port, then the start of the remote host; off
// a terminal whole, however wide), padded, and the space after it.
func (t *Text) appendEnds(b []byte, k *ends) []byte {
	l := &t.l
	if l.cookie {
		var d [20]byte
		cookie := strconv.AppendUint(d[:0], k.cookie, 10)
		b = append(append(style.AppendSpaces(b, cookieW-len(cookie)), cookie...), ' ')
		at := len(b)
		b = strconv.AppendUint(b, uint64(k.netns), 10)
		b = style.AppendSpaces(b, netnsW+1-(len(b)-at))
	}
	s := style.AppendEndpoint(t.tmp[:0], k.saddr, k.sport)
	local := len(s)
	s = append(s, l.arrow...)
	remote := len(s)
	s = style.AppendEndpoint(s, k.daddr, k.dport)
	t.tmp = s
	remoteW := style.Cells(s[remote:])
	w := style.Cells(s[:local]) + l.arrowW + remoteW
	if w > l.conn && !l.pipe {
		at := len(b)
		b = append(style.AppendPort(append(b, ':'), k.sport), l.arrow...) // the local port
		headW := len(b) - at - len(l.arrow) + l.arrowW
		switch {
		case headW+remoteW <= l.conn:
			b, w = append(b, s[remote:]...), headW+remoteW
		case l.conn-headW >= 6:
			b, w = style.AppendTruncLeft(b, s[remote:], l.conn-headW, l.ell)
			w += headW
		default:
			b, w = style.AppendTruncRight(b[:at], s, l.conn, l.ell)
		}
	} else {
		b = append(b, s...)
	}
	return style.AppendSpaces(b, max(1, l.conn+1-w))
}

// state returns a state's name as the layout shows it: abbreviated when
// narrow on a terminal.
func (l *layout) state(s events.State) string {
	switch {
	case !l.narrow || l.pipe:
	case s == events.Established:
		return "ESTAB"
	case s == events.NewSynRecv:
		return "NEW_SYN"
	}
	return s.String()
}
