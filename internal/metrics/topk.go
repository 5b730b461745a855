package metrics

import (
	"cmp"
	"slices"
	"strings"
)

// OtherLabel is the label value of the bucket that counts everything
// without a series of its own.
const OtherLabel = "other"

// maxCandidates bounds the keys whose counts are kept for promotion.
const maxCandidates = 4096

// topCounter is a counter vector with at most k labelled series plus an
// "other" bucket, so label cardinality stays bounded over days. A new key
// gets a series while fewer than k exist; otherwise it counts under other.
// At the end of each window, series idle through it are released and the
// busiest keys counted under other take the slots of the quietest series
// (a promoted series starts at zero: other keeps what it counted, so every
// series stays monotonic). Not safe for concurrent use.
type topCounter struct {
	k        int
	window   uint64 // ns
	winStart uint64
	slots    map[string]*slot
	other    uint64
	cand     map[string]uint64 // this window's counts of keys under other
}

type slot struct {
	total, recent uint64
}

func newTopCounter(k int, window uint64) *topCounter {
	return &topCounter{k: k, window: window, slots: map[string]*slot{}, cand: map[string]uint64{}}
}

// add counts n for key at time now (ns, any monotonic clock).
func (t *topCounter) add(key string, n, now uint64) {
	if t.winStart == 0 {
		t.winStart = now
	}
	if t.window > 0 && now >= t.winStart+t.window {
		t.rotate()
		t.winStart = now
	}
	if s := t.slots[key]; s != nil {
		s.total += n
		s.recent += n
		return
	}
	if len(t.slots) < t.k {
		t.slots[key] = &slot{total: n, recent: n}
		return
	}
	t.other += n
	if _, ok := t.cand[key]; ok || len(t.cand) < maxCandidates {
		t.cand[key] += n
	}
}

// rotate ends a window: releases idle series and promotes busy keys.
func (t *topCounter) rotate() {
	for k, s := range t.slots {
		if s.recent == 0 {
			delete(t.slots, k)
		}
	}
	type kc struct {
		key string
		n   uint64
	}
	cands := make([]kc, 0, len(t.cand))
	for k, n := range t.cand {
		cands = append(cands, kc{k, n})
	}
	slices.SortFunc(cands, func(a, b kc) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.key, b.key)) })
	for _, c := range cands {
		if len(t.slots) >= t.k {
			minKey, minN := "", uint64(0)
			for k, s := range t.slots {
				if minKey == "" || s.recent < minN || (s.recent == minN && k > minKey) {
					minKey, minN = k, s.recent
				}
			}
			if c.n <= minN {
				break
			}
			delete(t.slots, minKey)
		}
		t.slots[c.key] = &slot{}
	}
	for _, s := range t.slots {
		s.recent = 0
	}
	clear(t.cand)
}

// each calls fn for every labelled series and then for other (from 0).
func (t *topCounter) each(fn func(key string, total uint64)) {
	for k, s := range t.slots {
		fn(k, s.total)
	}
	fn(OtherLabel, t.other)
}
