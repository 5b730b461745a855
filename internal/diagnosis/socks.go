package diagnosis

// sockMap is the live timewait sockets by cookie.
type sockMap struct {
	m map[uint64]twSock
}

// get returns the socket of cookie c.
func (t *sockMap) get(c uint64) (twSock, bool) {
	s, ok := t.m[c]
	return s, ok
}

// set files s under cookie c.
func (t *sockMap) set(c uint64, s twSock) {
	if t.m == nil {
		t.m = map[uint64]twSock{}
	}
	t.m[c] = s
}

// del forgets the socket of cookie c.
func (t *sockMap) del(c uint64) { delete(t.m, c) }

// len returns the sockets held.
func (t *sockMap) len() int { return len(t.m) }

// each calls fn with every socket held and its cookie.
func (t *sockMap) each(fn func(c uint64, s *twSock)) {
	for c, s := range t.m {
		fn(c, &s)
	}
}
