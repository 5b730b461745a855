package events

import "slices"

// edges are the TCP state machine's transitions, besides X→CLOSE from any state.
var edges = [...][]State{
	Close:       {SynSent, Listen},
	Listen:      {SynRecv},
	SynSent:     {Established, SynRecv},
	SynRecv:     {Established, FinWait1},
	Established: {FinWait1, CloseWait},
	FinWait1:    {FinWait2, Closing},
	CloseWait:   {LastAck},
	Closing:     nil,
	NewSynRecv:  nil,
}

// statePath appends to buf the states after from on a shortest path to to
// (to included), or just to when the state machine has no such path.
func statePath(from, to State, buf []State) []State {
	const n = NewSynRecv + 1
	if from >= n || to >= n {
		return append(buf, to)
	}
	var prev [n]State
	var seen [n]bool
	queue := [n]State{from}
	seen[from] = true
	for head, tail := 0, 1; head < tail; head++ {
		s := queue[head]
		for i := 0; i <= len(edges[s]); i++ {
			next := Close // every state can go to CLOSE
			if i < len(edges[s]) {
				next = edges[s][i]
			}
			if seen[next] {
				continue
			}
			seen[next], prev[next] = true, s
			if next == to {
				start := len(buf)
				for x := to; x != from; x = prev[x] {
					buf = append(buf, x)
				}
				slices.Reverse(buf[start:])
				return buf
			}
			queue[tail] = next
			tail++
		}
	}
	return append(buf, to)
}
