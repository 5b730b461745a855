package diagnosis

import "time"

// failKey groups failed connects.
type failKey struct {
	owner ProcKey
	dest  Dest
	err   uint16
}

type failCount struct {
	total, fresh uint64
	noticed      uint64 // ns of the latest notice
}

// failedTable counts failed connects per process, destination and error.
type failedTable struct {
	m     map[failKey]*failCount
	other uint64
}

func (t *failedTable) add(o ProcKey, d Dest, err uint16, now uint64) {
	k := failKey{o, d, err}
	c := t.m[k]
	if c == nil {
		if len(t.m) >= MaxDests {
			t.other++
			return
		}
		c = &failCount{}
		t.m[k] = c
	}
	c.total++
	c.fresh++
}

// notices reports, at most once a second per group, the connects that failed since.
func (t *failedTable) notices(now uint64, out func(*FailedNotice)) {
	for k, c := range t.m {
		if c.fresh == 0 || (c.noticed != 0 && now < c.noticed+uint64(time.Second)) {
			continue
		}
		out(&FailedNotice{Time: now, Owner: k.owner, Dest: k.dest, Err: k.err, New: c.fresh, Total: c.total})
		c.fresh, c.noticed = 0, now
	}
}
