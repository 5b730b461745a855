package ledger

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// diagSock is a sock_diag netlink socket bound to one network namespace.
// Dumps are streamed into the snapshot with no per-socket allocation and no
// TCP-info extension: a host with tens of thousands of TIME_WAIT sockets
// must not cost tens of MiB at each poll.
type diagSock struct {
	s *nl.NetlinkSocket
}

// openHandle opens a sock_diag netlink socket inside the namespace at path.
func openHandle(path string) (*diagSock, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer ns.Close()
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", path, err)
	}
	// A stuck kernel answer must not stall the poller forever.
	_ = s.SetReceiveTimeout(&unix.Timeval{Sec: 5})
	return &diagSock{s: s}, nil
}

// Close closes the socket.
func (d *diagSock) Close() { d.s.Close() }

// diagReq is struct inet_diag_req_v2 for a dump of TCP sockets in states.
type diagReq struct {
	family uint8
	states uint32 // bit per TCP state; 0 means all
}

// Len is the request's size.
func (r *diagReq) Len() int { return 56 }

// Serialize lays the request out as the kernel reads it.
func (r *diagReq) Serialize() []byte {
	b := make([]byte, 56)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	b[2] = 0 // no extensions
	states := r.states
	if states == 0 {
		states = 0xfff
	}
	binary.NativeEndian.PutUint32(b[4:], states)
	return b
}

// Size of struct inet_diag_msg.
const diagMsgLen = 72

// dump reads the TCP table of the namespace d is bound to into s.
func dump(d *diagSock, s *Snapshot) error {
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := d.dumpStates(fam, 0, s); err != nil {
			return err
		}
	}
	return nil
}

// dumpStates reads the sockets of one family in the given states into s.
func (d *diagSock) dumpStates(fam uint8, states uint32, s *Snapshot) error {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	req.AddData(&diagReq{family: fam, states: states})
	if err := d.s.Send(req); err != nil {
		return fmt.Errorf("sock_diag request (family %d): %w", fam, err)
	}
	if err := d.receive(s, req.Seq); err != nil {
		return fmt.Errorf("sock_diag dump (family %d): %w", fam, err)
	}
	return nil
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
	var out []Socket
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var s Snapshot
		if err := d.dumpStates(fam, 1<<uint(events.Listen), &s); err != nil {
			return nil, err
		}
		for _, so := range s.Listening {
			so.Family = uint16(fam)
			out = append(out, so)
		}
	}
	return out, nil
}

// receive reads one dump's answers until NLMSG_DONE.
func (d *diagSock) receive(s *Snapshot, seq uint32) error {
	for {
		msgs, _, err := d.s.Receive()
		if err != nil {
			return err
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != seq {
				continue // a late answer to an earlier, abandoned dump
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return unix.Errno(-errno)
					}
				}
				return nil
			}
			if len(m.Data) < diagMsgLen {
				continue
			}
			add(s, parseDiag(m.Data))
		}
	}
}

// parseDiag decodes struct inet_diag_msg.
func parseDiag(b []byte) Socket {
	fam := b[0]
	so := Socket{
		State:   events.State(b[1]),
		Family:  uint16(fam),
		Sport:   binary.BigEndian.Uint16(b[4:]),
		Dport:   binary.BigEndian.Uint16(b[6:]),
		Cookie:  uint64(binary.NativeEndian.Uint32(b[44:])) | uint64(binary.NativeEndian.Uint32(b[48:]))<<32,
		Expires: time.Duration(binary.NativeEndian.Uint32(b[52:])) * time.Millisecond,
		Inode:   binary.NativeEndian.Uint32(b[68:]),
		timer:   b[2],
	}
	if fam == unix.AF_INET {
		so.Saddr = netip.AddrFrom4([4]byte(b[8:12]))
		so.Daddr = netip.AddrFrom4([4]byte(b[24:28]))
	} else {
		so.Saddr = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		so.Daddr = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
		if so.Saddr.Is4() {
			so.Family = unix.AF_INET
		}
	}
	return so
}
