package render

// segSlots is how many connections a segCache remembers.
const segSlots = 64

// segCache remembers, for recently seen connections, the rendered text of
// the part of a line that depends only on the connection's identity
// (owner, addresses, ports): consecutive events of a connection render it
// the same. The key must hold every input of that text, and the text must
// be a function of the key alone.
type segCache[K any] struct {
	slots [segSlots]segment[K]
}

// segment is one remembered rendering.
type segment[K any] struct {
	key  K
	ok   bool // key and text are set
	text []byte
	tail int    // where a part of text that another line may reuse starts (JSON: "family")
	span [2]int // a part of text its view may edit in place (JSON: the local port's digits)
}

// slot returns the segment that may hold the rendering for h (the
// connection's cookie). The caller checks its key, and on a miss stores
// the key and renders text afresh into text[:0].
func (c *segCache[K]) slot(h uint64) *segment[K] { return &c.slots[h%segSlots] }
