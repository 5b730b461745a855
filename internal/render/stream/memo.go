package stream

// memo remembers, for a view's latest connections, the text it rendered
// of each one's identity: a connection's transitions mostly show the same
// owner and addresses. The text is rendered from the key alone (and the
// view's fixed layout), so a key that matches has the text it stands for;
// any other key renders afresh. Nothing is edited or spliced.
type memo[K comparable] struct {
	slots [64]memoSlot[K] // by cookie
}

// memoSlot is one remembered rendering.
type memoSlot[K comparable] struct {
	key  K
	ok   bool
	text []byte
}

// text returns the text of key, rendered by render into a reused buffer
// when the connection's slot holds another; it is valid until the next call.
func (m *memo[K]) text(cookie uint64, key *K, render func(b []byte, key *K) []byte) []byte {
	s := &m.slots[cookie%uint64(len(m.slots))]
	if !s.ok || s.key != *key {
		s.key, s.ok = *key, true
		s.text = render(s.text[:0], &s.key)
	}
	return s.text
}
