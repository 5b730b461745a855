package container

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/jsonstr"
)

// Filter selects connections by network namespace and container. Zero
// fields match all.
type Filter struct {
	Netns     uint32 // network namespace inode (as the netns field shows)
	Container string // a container ID or prefix of at least 4 digits, a pod name, "namespace/pod", or "host" (in no container)
}

// ParseNetns parses a network namespace: an inode number, or "net:[inode]"
// as readlink /proc/<pid>/ns/net prints it.
func ParseNetns(s string) (uint32, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "net:["), "]")
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("want a namespace inode such as 4026531840 or net:[4026531840], got %q", s)
	}
	return uint32(n), nil
}

// Check rejects a container selector too short to be unambiguous.
func (f Filter) Check() error {
	c := f.Container
	if c != "" && c != "host" && isHex(c) && len(c) < 4 {
		return fmt.Errorf("give at least 4 digits of the container ID, got %q", c)
	}
	return nil
}

// Active reports whether the filter selects anything at all.
func (f Filter) Active() bool { return f.Netns != 0 || f.Container != "" }

// MatchInfo reports whether a connection in netns with container info passes.
func (f Filter) MatchInfo(netns uint32, i Info) bool {
	if f.Netns != 0 && netns != f.Netns {
		return false
	}
	c := f.Container
	switch {
	case c == "":
		return true
	case c == "host":
		return !i.InContainer() && i.PodUID == ""
	case len(c) >= 4 && isHex(c) && strings.HasPrefix(i.ID, c):
		return true
	case i.PodName != "" && (c == i.PodName || c == i.PodNamespace+"/"+i.PodName):
		return true
	case i.PodUID != "" && c == i.PodUID:
		return true
	}
	return false
}

// Filtered returns a sink that passes to sink only the connections that
// match f, resolved with r; loss notices always pass. Place it after the
// tracker.
func Filtered(f Filter, r *Resolver, sink events.Sink) events.Sink {
	return &events.Gate{Sink: sink, Pass: func(c *events.Conn) bool {
		switch {
		case !f.Active():
			return true
		case f.Container == "":
			return f.MatchInfo(c.Netns, Info{})
		}
		return f.MatchInfo(c.Netns, r.Conn(c))
	}}
}

// AppendJSON appends the container fields of a JSON object to b, before
// its closing brace: "container" (full ID), "runtime", "pod_uid", "pod"
// and "pod_namespace", each only when known. Outside containers it appends
// nothing.
func AppendJSON(b []byte, i Info) []byte {
	b = appendField(b, "container", i.ID)
	b = appendField(b, "runtime", i.Runtime)
	b = appendField(b, "pod_uid", i.PodUID)
	b = appendField(b, "pod", i.PodName)
	return appendField(b, "pod_namespace", i.PodNamespace)
}

// appendField appends the member key with the string v, unless v is "".
func appendField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(append(append(b, ',', '"'), key...), '"', ':')
	return jsonstr.Append(b, v)
}

// isHex reports whether s is all lowercase hex digits.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
