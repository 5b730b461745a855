package render

import (
	"bytes"
	"net/netip"
	"unicode/utf8"

	"github.com/tcptrace/tcptrace/internal/events"
)

// The text view's columns, appended to a reused line buffer. Each has a
// fast path for what the kernel reports (ASCII names, addresses without
// odd zones) and falls back to the string helpers of format.go, which
// define the output, for anything else.

// stateText holds a state's name as the text view shows it, [1] in narrow
// layouts, and its width in cells.
type stateText struct {
	name  [2]string
	cells [2]int
}

// stateTexts are the names of every State value, out-of-range ones too.
var stateTexts = func() (t [256]stateText) {
	for i := range t {
		s := events.State(i)
		t[i].name = [2]string{s.String(), shortState(s)}
		t[i].cells = [2]int{cells(t[i].name[0]), cells(t[i].name[1])}
	}
	return t
}()

// blanks is a run of spaces to pad from.
const blanks = "                                                                "

// appendSpaces appends n spaces (none when n <= 0).
func appendSpaces(b []byte, n int) []byte {
	for n > len(blanks) {
		b = append(b, blanks...)
		n -= len(blanks)
	}
	if n > 0 {
		b = append(b, blanks[:n]...)
	}
	return b
}

// appendUintLeft appends v right-aligned in w cells.
func appendUintLeft(b []byte, v uint64, w int) []byte {
	var d [20]byte
	s := appendDec(d[:0], v)
	return append(appendSpaces(b, w-len(s)), s...)
}

// appendUintRight appends v left-aligned in w cells.
func appendUintRight(b []byte, v uint64, w int) []byte {
	n := len(b)
	b = appendDec(b, v)
	return appendSpaces(b, w-(len(b)-n))
}

// whoConn is what the PID, COMM, COOKIE, NETNS and LOCAL→REMOTE columns
// show: all they read, so that their text can be kept per connection.
type whoConn struct {
	cookie       uint64
	pid, netns   uint32
	comm         events.Comm
	source       events.OwnerSource
	sport, dport uint16
	saddr, daddr netip.Addr
}

// newWhoConn gathers the columns' inputs: the owner as the event carries
// it, the rest from the connection.
func newWhoConn(ev *events.Event, c *events.Conn) whoConn {
	return whoConn{cookie: c.Cookie, pid: ev.PID, netns: c.Netns, comm: ev.Comm, source: c.Owner.Source,
		sport: c.Sport, dport: c.Dport, saddr: c.Saddr, daddr: c.Daddr}
}

// same reports whether k and o are equal (as ==, field by field).
func (k *whoConn) same(o *whoConn) bool {
	return k.cookie == o.cookie && k.sport == o.sport && k.dport == o.dport && k.pid == o.pid &&
		k.netns == o.netns && k.source == o.source && k.comm == o.comm && k.saddr == o.saddr &&
		k.daddr == o.daddr
}

// appendWhoConn appends the columns from PID to LOCAL→REMOTE with the
// spaces after them; the PID and COMM are faint unless the owner was seen
// in a syscall.
func (t *Text) appendWhoConn(b []byte, k *whoConn) []byte {
	l, faint := &t.l, &t.st.ink.faint
	start := len(b)
	if k.source != events.OwnerSyscall {
		b = faint.begin(b)
	}
	var d [20]byte
	pid := append(d[:0], '?')
	if k.pid != 0 {
		pid = appendDec(d[:0], uint64(k.pid))
	}
	b = append(append(appendSpaces(b, l.pid-len(pid)), pid...), ' ')
	b = t.appendComm(b, &k.comm, k.source == events.OwnerUnknown, l.comm-max(0, len(pid)-l.pid))
	if k.source != events.OwnerSyscall {
		b = faint.end(b, start)
	}
	b = append(b, ' ')
	if l.cookie {
		b = append(appendUintLeft(b, k.cookie, cookieW), ' ')
		b = appendUintRight(b, uint64(k.netns), netnsW+1)
	}
	return t.appendConn(b, k)
}

// appendComm appends a task name, "?"-prefixed when its owner is unknown,
// cut or padded to w cells.
func (t *Text) appendComm(b []byte, comm *events.Comm, unknown bool, w int) []byte {
	n := 0
	for n < len(comm) && printable[comm[n]]&textSafe != 0 {
		n++
	}
	if n < len(comm) && comm[n] != 0 {
		return t.appendCommSlow(b, comm, unknown, w)
	}
	size := n
	if unknown {
		size++
	}
	if size <= w {
		if unknown {
			b = append(b, '?')
		}
		return appendSpaces(append(b, comm[:n]...), w-size)
	}
	keep := w - t.l.ellW
	if w <= 0 || keep < 0 {
		return t.appendCommSlow(b, comm, unknown, w)
	}
	if unknown && keep > 0 {
		b = append(b, '?')
		keep--
	}
	return append(append(b, comm[:keep]...), t.l.ell...)
}

// appendCommSlow is appendComm for names that need sanitizing.
func (t *Text) appendCommSlow(b []byte, comm *events.Comm, unknown bool, w int) []byte {
	s := sanitize(comm.String())
	if unknown {
		s = "?" + s
	}
	s = truncRight(s, w, t.l.ell)
	return appendSpaces(append(b, s...), w-cells(s))
}

// appendConn appends the LOCAL→REMOTE column, as layout.endpoints fits it,
// padded with the space after it.
func (t *Text) appendConn(b []byte, k *whoConn) []byte {
	l := &t.l
	s := appendEndpoint(t.tmp[:0], k.saddr, k.sport, &t.hosts)
	nl := len(s)
	s = appendEndpoint(s, k.daddr, k.dport, &t.hosts)
	t.tmp = s
	local, remote := s[:nl], s[nl:]
	lport := local[bytes.LastIndexByte(local, ':')+1:] // portText(c.Sport): local ends with it, or is "*"
	head := 1 + len(lport) + l.arrowW
	w := 0
	switch {
	case k.saddr.Zone() != "" || k.daddr.Zone() != "" || l.ellW < 1:
		// A zone may hold any text; without one every byte is one cell.
		conn := l.endpoints(endpoint(k.saddr, k.sport), portText(k.sport), endpoint(k.daddr, k.dport))
		b, w = append(b, conn...), cells(conn)
	case len(local)+l.arrowW+len(remote) <= l.conn:
		b = append(append(append(b, local...), l.arrow...), remote...)
		w = len(local) + l.arrowW + len(remote)
	case head+len(remote) <= l.conn:
		b = append(append(append(append(b, ':'), lport...), l.arrow...), remote...)
		w = head + len(remote)
	case l.conn-head >= 6: // truncLeft keeps the end of the remote host
		keep := l.conn - head - l.ellW
		b = append(append(append(append(b, ':'), lport...), l.arrow...), l.ell...)
		b = append(b, remote[len(remote)-keep:]...)
		w = head + l.ellW + keep
	case l.conn > 0: // truncRight of the whole
		keep := l.conn - l.ellW
		if keep <= len(local) {
			b = append(b, local[:keep]...)
		} else {
			b = append(b, local...)
			keep -= len(local)
			for _, r := range l.arrow {
				if keep == 0 {
					break
				}
				b = utf8.AppendRune(b, r)
				keep--
			}
			b = append(b, remote[:keep]...)
		}
		b = append(b, l.ell...)
		w = l.conn
	}
	return appendSpaces(b, l.conn+1-w)
}

// micro is the unit of microseconds.
var micro = []byte("µs")

// appendInOld appends the IN-OLD column and the space after it.
func (t *Text) appendInOld(b []byte, ns int64) []byte {
	s := appendDur(t.tmp[:0], ns, t.o.ASCII)
	t.tmp = s
	w := len(s) // in cells: the one rune appendDur writes in two bytes is the µ of µs
	if bytes.HasSuffix(s, micro) {
		w--
	}
	return append(append(appendSpaces(b, durW-w), s...), ' ')
}
