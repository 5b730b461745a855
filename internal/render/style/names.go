package style

import (
	"strconv"
	"syscall"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// FamilyName returns "ipv4", "ipv6" or "af<n>".
func FamilyName(f uint16) string {
	switch f {
	case syscall.AF_INET:
		return "ipv4"
	case syscall.AF_INET6:
		return "ipv6"
	}
	return "af" + strconv.Itoa(int(f))
}

// ErrnoName returns the symbolic name of an errno ("ECONNREFUSED").
func ErrnoName(e uint16) string {
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return "errno" + strconv.Itoa(int(e))
}

// Sanitize replaces control characters and invalid UTF-8 with '?', so that
// kernel-supplied names cannot move the cursor or inject escape codes.
func Sanitize(s string) string { return string(AppendSanitized(nil, s)) }

// AppendSanitized appends Sanitize(s).
func AppendSanitized[S string | []byte](b []byte, s S) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c >= ' ' && c <= '~' {
			b = append(b, c)
			i++
			continue
		}
		r, size := decodeRune(s, i)
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			b = append(b, '?')
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
