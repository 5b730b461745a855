package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/nsexec"
)

// ne is the byte order of netlink headers and inet_diag_msg's own fields.
var ne = binary.NativeEndian

// Netlink and sock_diag layout.
const (
	nlHdrLen         = 16 // struct nlmsghdr
	diagMsgLen       = 72 // struct inet_diag_msg
	reqV2Len         = 56 // struct inet_diag_req_v2
	reqV1Len         = 60 // struct inet_diag_req
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock   = 18 // TCPDIAG_GETSOCK: one walk of the table for both families
	allStates        = 0xfff
	afInet           = unix.AF_INET
	afInet6          = unix.AF_INET6
	recvBufLen       = 64 << 10 // the kernel fills at most 32 KiB per read
)

// diagSock is a blocking sock_diag netlink socket bound to one network
// namespace. A dump is streamed one read at a time through a caller's buffer
// and parsed in place: nothing is allocated per socket or per read.
type diagSock struct {
	fd       int
	seq      uint32
	noCompat bool // the kernel refused TCPDIAG_GETSOCK: one dump per family
	req      [nlHdrLen + reqV1Len]byte
}

// openHandle opens a sock_diag netlink socket inside the namespace at path.
func openHandle(path string) (*diagSock, error) {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer target.Close()
	d, err := openDiag(target)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// openDiag opens a sock_diag netlink socket inside target.
func openDiag(target netns.NsHandle) (*diagSock, error) {
	fd, err := socketIn(target)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// A stuck kernel answer must not stall the reader forever.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	return &diagSock{fd: fd}, nil
}

// socketIn creates the sock_diag netlink socket inside target.
func socketIn(target netns.NsHandle) (int, error) {
	fd := -1
	var serr error
	if err := nsexec.In(target, func() {
		fd, serr = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	}); err != nil {
		return -1, err
	}
	return fd, serr
}

// Close closes the socket.
func (d *diagSock) Close() { unix.Close(d.fd) }

// sink receives the sockets of a dump, each a struct inet_diag_msg.
type sink interface{ add(m []byte) }

// dumpAll reads every TCP socket of the namespace into s through buf: in one
// walk of the kernel's table when it takes the compat request, else one per family.
func (d *diagSock) dumpAll(buf []byte, states uint32, s sink) error {
	if !d.noCompat {
		n, err := d.dump(buf, tcpDiagGetSock, unix.AF_UNSPEC, states, s)
		if err == nil || n > 0 {
			return err
		}
		var errno unix.Errno
		if !errors.As(err, &errno) || errno == unix.EAGAIN || errno == unix.EINTR {
			return err
		}
		d.noCompat = true
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if _, err := d.dump(buf, sockDiagByFamily, fam, states, s); err != nil {
			return fmt.Errorf("family %d: %w", fam, err)
		}
	}
	return nil
}

// dump sends one dump request and streams its answer into s until
// NLMSG_DONE; it returns how many sockets it passed on.
func (d *diagSock) dump(buf []byte, typ uint16, fam uint8, states uint32, s sink) (int, error) {
	d.seq++
	if err := d.send(typ, fam, states); err != nil {
		return 0, fmt.Errorf("sock_diag request: %w", err)
	}
	n := 0
	for {
		r, err := d.recv(buf)
		if err != nil {
			return n, fmt.Errorf("sock_diag dump: %w", err)
		}
		for b := buf[:r]; len(b) >= nlHdrLen; {
			l := int(ne.Uint32(b))
			if l < nlHdrLen || l > len(b) {
				return n, errors.New("sock_diag dump: malformed netlink message")
			}
			typ, seq, m := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[nlHdrLen:l]
			b = b[min((l+3)&^3, len(b)):]
			if seq != d.seq {
				continue // a late answer to an earlier, abandoned dump
			}
			switch typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				if len(m) >= 4 {
					if errno := int32(ne.Uint32(m)); errno < 0 {
						return n, unix.Errno(-errno)
					}
				}
				return n, nil
			}
			if len(m) >= diagMsgLen {
				s.add(m)
				n++
			}
		}
	}
}

// send writes a dump request of type typ for family fam (compat: both).
func (d *diagSock) send(typ uint16, fam uint8, states uint32) error {
	b := d.req[:]
	clear(b)
	l := nlHdrLen + reqV2Len
	if typ == tcpDiagGetSock {
		l = nlHdrLen + reqV1Len
		ne.PutUint32(b[nlHdrLen+52:], states) // idiag_states after family, lengths, ext and id
	} else {
		b[nlHdrLen], b[nlHdrLen+1] = fam, unix.IPPROTO_TCP
		ne.PutUint32(b[nlHdrLen+4:], states) // no extensions
	}
	ne.PutUint32(b[0:], uint32(l))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], d.seq)
	_, err := unix.Write(d.fd, b[:l])
	return err
}

// recv reads one datagram of the answer into buf, failing rather than
// returning it cut short.
func (d *diagSock) recv(buf []byte) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(d.fd), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(len(buf)), unix.MSG_TRUNC, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case int(n) > len(buf):
			return 0, fmt.Errorf("netlink datagram of %d bytes truncated to %d", n, len(buf))
		}
		return int(n), nil
	}
}

// listening collects listening sockets.
type listening struct{ out []Socket }

func (l *listening) add(m []byte) {
	if m[1] == stListen {
		l.out = append(l.out, parseSocket(m))
	}
}

// Listening returns the listening TCP sockets of the network namespace at
// nsPath (e.g. /proc/PID/ns/net), the kernel filtering by state: cheap even
// beside tens of thousands of TIME_WAIT sockets. Each socket's Family is its
// own (a v6 listener stays AF_INET6).
func Listening(nsPath string) ([]Socket, error) {
	d, err := openHandle(nsPath)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var l listening
	if err := d.dumpAll(make([]byte, recvBufLen), 1<<uint(events.Listen), &l); err != nil {
		return nil, err
	}
	return l.out, nil
}

// parseSocket decodes struct inet_diag_msg.
func parseSocket(b []byte) Socket {
	so := Socket{
		State:   events.State(b[1]),
		Family:  uint16(b[0]),
		Sport:   binary.BigEndian.Uint16(b[4:]),
		Dport:   binary.BigEndian.Uint16(b[6:]),
		Cookie:  diagCookie(b),
		Expires: time.Duration(ne.Uint32(b[52:])) * time.Millisecond,
		Inode:   ne.Uint32(b[68:]),
	}
	if b[0] == afInet {
		so.Saddr = netip.AddrFrom4([4]byte(b[8:12]))
		so.Daddr = netip.AddrFrom4([4]byte(b[24:28]))
	} else {
		so.Saddr = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		so.Daddr = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	}
	return so
}

// diagCookie reads idiag_cookie, the socket cookie, of struct inet_diag_msg m.
func diagCookie(m []byte) uint64 { return uint64(ne.Uint32(m[44:])) | uint64(ne.Uint32(m[48:]))<<32 }
