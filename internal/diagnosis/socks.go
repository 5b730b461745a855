package diagnosis

// Blocks of the timewait table.
const (
	blockBits = 3    // a block holds 2^blockBits consecutive cookies
	maxFree   = 1024 // empty blocks kept for reuse
)

// sockMap is the timewait sockets by cookie: a Go map from cookie/8 to a
// block of 8 entries. The kernel hands out cookies in runs (per-CPU batches
// of consecutive values), so sockets that start together share blocks and
// end together: a step touches the block its neighbours just touched,
// whatever the table's size, where a map keyed by cookie would place each
// socket on a line of its own (a cache miss per step in a big table).
type sockMap struct {
	m       map[uint64]*twBlock
	last    *twBlock // the latest block looked up, and its key: a step looks its socket up more than once
	lastKey uint64
	free    []*twBlock
	n       int
}

// twBlock holds the sockets of 8 consecutive cookies.
type twBlock struct {
	used uint8 // bit i: entry i holds a socket
	s    [1 << blockBits]twSock
}

// block returns the block of cookie c, nil if none.
func (t *sockMap) block(c uint64) *twBlock {
	k := c >> blockBits
	if t.last != nil && t.lastKey == k {
		return t.last
	}
	b := t.m[k]
	if b != nil {
		t.last, t.lastKey = b, k
	}
	return b
}

// get returns the socket of cookie c.
func (t *sockMap) get(c uint64) (twSock, bool) {
	b := t.block(c)
	if i := c & (1<<blockBits - 1); b != nil && b.used&(1<<i) != 0 {
		return b.s[i], true
	}
	return twSock{}, false
}

// set files s under cookie c.
func (t *sockMap) set(c uint64, s twSock) {
	b := t.block(c)
	if b == nil {
		if n := len(t.free); n > 0 {
			b, t.free = t.free[n-1], t.free[:n-1]
		} else {
			b = &twBlock{}
		}
		if t.m == nil {
			t.m = map[uint64]*twBlock{}
		}
		t.m[c>>blockBits] = b
		t.last, t.lastKey = b, c>>blockBits
	}
	i := c & (1<<blockBits - 1)
	if b.used&(1<<i) == 0 {
		b.used |= 1 << i
		t.n++
	}
	b.s[i] = s
}

// del forgets the socket of cookie c.
func (t *sockMap) del(c uint64) {
	b := t.block(c)
	i := c & (1<<blockBits - 1)
	if b == nil || b.used&(1<<i) == 0 {
		return
	}
	b.used &^= 1 << i
	b.s[i] = twSock{}
	t.n--
	if b.used == 0 {
		delete(t.m, c>>blockBits)
		if t.last == b {
			t.last = nil
		}
		if len(t.free) < maxFree {
			t.free = append(t.free, b)
		}
	}
}

// len returns the sockets held.
func (t *sockMap) len() int { return t.n }

// each calls fn with every socket held and its cookie.
func (t *sockMap) each(fn func(c uint64, s *twSock)) {
	for k, b := range t.m {
		for i := range b.s {
			if b.used&(1<<i) != 0 {
				fn(k<<blockBits|uint64(i), &b.s[i])
			}
		}
	}
}
