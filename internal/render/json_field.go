package render

import (
	"net/netip"
	"syscall"
	"unicode/utf8"

	"github.com/tcptrace/tcptrace/internal/events"
)

// The JSON view's members. Those naming an enum value are built once, as
// appendStr builds them: `,"old":"ESTABLISHED"`.

// jsonMembers returns key's member for each value up to last.
func jsonMembers[V ~uint8](key string, last V, name func(V) string) []string {
	t := make([]string, int(last)+1)
	for i := range t {
		t[i] = string(appendStr(nil, key, name(V(i))))
	}
	return t
}

var (
	jsonOld       = jsonMembers("old", events.State(255), events.State.String)
	jsonNew       = jsonMembers("new", events.State(255), events.State.String)
	jsonKernelNew = jsonMembers("kernel_new", events.State(255), events.State.String)
	jsonTwState   = jsonMembers("timewait_state", events.State(255), events.State.String)
	jsonSource    = jsonMembers("owner_source", events.OwnerProc, sourceName)
	jsonRole      = jsonMembers("role", events.RoleListener, roleName)
	jsonCloser    = jsonMembers("closer", events.CloserSimultaneous, closerName)
	jsonEnd       = jsonMembers("end", events.EndClosed, endName)
	jsonResetBy   = jsonMembers("reset_by", events.SidePeer, sideName)
	jsonIPv4      = string(appendStr(nil, "family", familyName(syscall.AF_INET)))
	jsonIPv6      = string(appendStr(nil, "family", familyName(syscall.AF_INET6)))
	// jsonSpan opens a state span of a connection record: `{"state":"CLOSE","us":`.
	jsonSpan = func() (t [256]string) {
		for i := range t {
			t[i] = `{"state":"` + events.State(i).String() + `","us":`
		}
		return t
	}()
)

// appendEnum appends t[v], or key's member for name(v) when v is past t.
func appendEnum[V ~uint8](b []byte, t []string, v V, key string, name func(V) string) []byte {
	if int(v) < len(t) {
		return append(b, t[v]...)
	}
	return appendStr(b, key, name(v))
}

// appendFamily appends the "family" member.
func appendFamily(b []byte, f uint16) []byte {
	switch f {
	case syscall.AF_INET:
		return append(b, jsonIPv4...)
	case syscall.AF_INET6:
		return append(b, jsonIPv6...)
	}
	return appendStr(b, "family", familyName(f))
}

// appendNum appends a member, given as `,"key":`, with a number.
func appendNum(b []byte, member string, v uint64) []byte {
	return appendDec(append(b, member...), v)
}

// appendFlag appends a member, given as `,"key":true`, when v.
func appendFlag(b []byte, member string, v bool) []byte {
	if !v {
		return b
	}
	return append(b, member...)
}

// appendStr appends a member with a string.
func appendStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendQuoted(b, v)
}

// appendAddr appends a member, given as `,"key":"`, with an address as a
// string, "" when there is none.
func appendAddr(b []byte, member string, a netip.Addr, h *hostCache) []byte {
	b = append(b, member...)
	if a.IsValid() {
		b = h.appendAddr(b, a)
	}
	return append(b, '"')
}

// appendMicros appends ns as microseconds with up to three decimals.
func appendMicros(b []byte, ns uint64) []byte {
	b = appendDec(b, ns/1000)
	if f := ns % 1000; f != 0 {
		b = append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b
}

// appendComm appends a "comm" member without allocating for plain names.
func appendComm(b []byte, c *events.Comm) []byte {
	n := 0
	for n < len(c) && printable[c[n]]&jsonSafe != 0 {
		n++
	}
	if n < len(c) && c[n] != 0 {
		return appendQuoted(append(b, `,"comm":`...), c.String())
	}
	b = append(append(b, `,"comm":"`...), c[:n]...)
	return append(b, '"')
}

// appendQuoted appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
