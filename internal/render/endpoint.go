package render

import "net/netip"

// Endpoints appended as text: the views' hottest strings after numbers.

// appendPort appends portText(p).
func appendPort(b []byte, p uint16) []byte {
	if p == 0 {
		return append(b, '*')
	}
	return appendDec(b, uint64(p))
}

// appendEndpoint appends endpoint(a, port), the address from h when h is
// not nil.
func appendEndpoint(b []byte, a netip.Addr, port uint16, h *hostCache) []byte {
	switch {
	case port == 0 && (!a.IsValid() || a.IsUnspecified()):
		return append(b, '*')
	case !a.IsValid():
		b = append(b, '*')
	case a.Is6():
		b = append(h.appendAddr(append(b, '['), a), ']')
	default:
		b = h.appendAddr(b, a)
	}
	return appendPort(append(b, ':'), port)
}

// hostCache holds the text of the two addresses shown last: a run of
// events mostly involves the same few hosts.
type hostCache [2]struct {
	a    netip.Addr
	text []byte
}

// appendAddr appends a.AppendTo's text.
func (h *hostCache) appendAddr(b []byte, a netip.Addr) []byte {
	if h == nil {
		return a.AppendTo(b)
	}
	for i := range h {
		if h[i].a == a && h[i].text != nil {
			return append(b, h[i].text...)
		}
	}
	reuse := h[1].text
	h[1] = h[0]
	h[0].a, h[0].text = a, a.AppendTo(reuse[:0])
	return append(b, h[0].text...)
}
