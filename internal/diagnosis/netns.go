package diagnosis

// nsView is what the engine knows of one network namespace.
type nsView struct {
	netns     uint32 // which
	sysctls   Sysctls
	live      bool        // sysctls were read in the namespace (SetNetnsSysctls)
	tw, fw2   int         // timewait sockets held now: TIME_WAIT, orphaned FIN_WAIT2
	found     int         // of them, those that predate tracing (read from the table at start)
	tableRead bool        // its table was read at start (MarkTableRead, or a TwFound came)
	orphans   []orphanRec // its orphaned FIN_WAIT2 timewait sockets in the order they started; those since moved or ended are dropped lazily
}

// orphanRec is an orphaned FIN_WAIT2 timewait socket as it started.
type orphanRec struct {
	cookie, took uint64
}

// ns notes a namespace, telling OnNetns the first time.
func (e *Engine) ns(netns uint32) *nsView {
	if v := e.lastNs; v != nil && v.netns == netns {
		return v
	}
	v := e.netns[netns]
	if v == nil {
		if len(e.netns) >= MaxDests {
			return &nsView{netns: netns}
		}
		v = &nsView{netns: netns}
		e.netns[netns] = v
		if e.o.OnNetns != nil {
			e.o.OnNetns(netns)
		}
	}
	e.lastNs = v
	return v
}

// view returns a namespace's view without telling OnNetns, creating it.
func (e *Engine) view(netns uint32) *nsView {
	v := e.netns[netns]
	if v == nil {
		v = &nsView{netns: netns}
		if len(e.netns) < MaxDests {
			e.netns[netns] = v
		}
	}
	return v
}

// sysctls returns a namespace's settings: the live ones (SetNetnsSysctls),
// else Options.Sysctls', else the kernel defaults.
func (e *Engine) sysctls(netns uint32) Sysctls {
	v := e.lastNs
	if v == nil || v.netns != netns {
		v = e.netns[netns]
	}
	if v != nil && v.live {
		return v.sysctls
	}
	if e.o.Sysctls != nil {
		if s := e.o.Sysctls(netns); s != nil {
			return *s
		}
	}
	return DefaultSysctls
}

// SetNetnsSysctls sets a namespace's live settings: the values of
// net.ipv4.<name> keyed by name, as read in the namespace (see
// ParseSysctls). They take precedence over Options.Sysctls. It does not
// call Options.OnNetns.
func (e *Engine) SetNetnsSysctls(netns uint32, m map[string]string) {
	v := e.view(netns)
	v.sysctls, v.live = ParseSysctls(m), true
}

// MarkTableRead notes that a namespace's timewait sockets were read at
// start (its TwFound events, if any, are in the stream): the report says
// its TIME_WAIT is known from events plus the table (MethodTable).
func (e *Engine) MarkTableRead(netns uint32) { e.view(netns).tableRead = true }

// SetNetnsHook sets Options.OnNetns after construction (live: watch the namespace).
func (e *Engine) SetNetnsHook(fn func(uint32)) { e.o.OnNetns = fn }

// SetSysctls sets Options.Sysctls after construction (replay: the recorded ones).
func (e *Engine) SetSysctls(fn func(uint32) *Sysctls) { e.o.Sysctls = fn }

// TimeWaitEvents reports whether the engine follows timewait sockets from
// events (Options.TimeWaitEvents, or a KindTimeWait event was seen); if
// not, TIME_WAIT is inferred from traced handovers.
func (e *Engine) TimeWaitEvents() bool { return e.twEvents }
