//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tcptrace: every TCP state change with the socket's owner, and the timer steps of
// timewait sockets. Types, maps, cfg: tcptrace.h; the reasons: docs/kernels.md.

#include "tcptrace.h"

#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- emit: a record into the ring ---- */
/* add adds n to this CPU's counter slot (no other writer) and returns its new value. */
static __always_inline __u64 add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	return v ? (*v += n) : 0;
}

/* emit sends the head of r, its comm with EVENT_COMM, all of it for IPv6 (struct event). */
static __always_inline void emit(const struct record *r)
{
	__u64 size = sizeof(struct event), flags = BPF_RB_NO_WAKEUP, produced;

	/* Simulated loss (tests): of state transitions only, which those tests count. */
	if (cfg.drop_every && r->e.kind == EVENT_KIND_STATE && add(COUNTER_SEQ, 1) % cfg.drop_every == 0) {
		add(COUNTER_RINGBUF_LOST, 1);
		return;
	}
	if (r->e.family == AF_INET6)
		size = sizeof(struct record);
	else if (r->e.flags & EVENT_COMM)
		size = __builtin_offsetof(struct record, saddr6);
	/* Wake the reader once per wakeup_bytes this CPU writes (docs/kernels.md, "Wakeups"). */
	produced = add(COUNTER_PRODUCED, size + 8);
	if (((produced - size - 8) ^ produced) & ~(cfg.wakeup_bytes - 1))
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, (void *)r, size, flags))
		add(COUNTER_RINGBUF_LOST, 1);
}

/* ---- filter: cfg's runtime filters ---- */
static __always_inline int addr_eq(const __u8 *a, const volatile __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static __always_inline int comm_eq(const char *a, const volatile char *b)
{
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return 0;
		if (!a[i])
			break;
	}
	return 1;
}

/* filtered_out: r fails a filter; tcptrace's own sockets pass (self-test). */
static __always_inline int filtered_out(const struct record *r)
{
	if (r->e.flags & (EVENT_TASK_OWNS | EVENT_OWNER_KNOWN)) { /* else userspace filters */
		if (r->e.pid == cfg.self_pid)
			return 0;
		if (cfg.pid && r->e.pid != cfg.pid)
			return 1;
		if (cfg.comm[0] && !comm_eq(r->comm, cfg.comm))
			return 1;
	}
	/* At CLOSE->SYN_SENT a client's local port is still 0: only the remote one can match. */
	if (cfg.port && r->e.sport != cfg.port && r->e.dport != cfg.port)
		return 1;
	if (!cfg.host_family)
		return 0;
	if (r->e.family != cfg.host_family)
		return 1;
	if (r->e.family == AF_INET)
		return !addr_eq(r->e.saddr, cfg.host, 4) && !addr_eq(r->e.daddr, cfg.host, 4);
	return !addr_eq(r->saddr6, cfg.host, 16) && !addr_eq(r->daddr6, cfg.host, 16);
}

/* ---- the socket: identity, addresses, ports, states ---- */
/* set_v6: v4-mapped IPv6 addresses in r (::ffff:a.b.c.d) are sent as IPv4. */
static __always_inline void set_v6(struct record *r)
{
	const __u32 *s = (const __u32 *)r->saddr6, *d = (const __u32 *)r->daddr6;

	if (!(s[0] | s[1] | d[0] | d[1]) && s[2] == bpf_htonl(0xffff) && d[2] == bpf_htonl(0xffff)) {
		r->e.family = AF_INET;
		*(__u32 *)r->e.saddr = s[3];
		*(__u32 *)r->e.daddr = d[3];
		return;
	}
	r->e.family = AF_INET6;
	__builtin_memset(r->comm, 0, sizeof(r->comm)); /* sent with IPv6; filled if an owner is known */
}

/* read_head fills the record of a full socket's transition by direct loads, writing
 * only what is sent. */
static __always_inline void read_head(struct record *r, const struct sock *sk, __u16 family,
				      int oldstate, int newstate)
{
	struct task_struct *task;
	struct cgroup *cg;

	__builtin_memset(&r->e, 0, sizeof(r->e));
	r->e.ts_ns = bpf_ktime_get_ns();
	r->e.cookie = sk->__sk_common.skc_cookie.counter; /* a plain load, once it is made */
	if (!r->e.cookie)
		r->e.cookie = bpf_get_socket_cookie((void *)sk);
	cg = bpf_core_field_exists(sk->sk_cgrp_data.cgroup) ? sk->sk_cgrp_data.cgroup : NULL;
	if (cg)
		r->e.cgroup_id = cg->kn->id;
	if (family == AF_INET) {
		r->e.family = AF_INET;
		*(__be32 *)r->e.saddr = sk->__sk_common.skc_rcv_saddr;
		*(__be32 *)r->e.daddr = sk->__sk_common.skc_daddr;
	} else {
		*(struct in6_addr *)r->saddr6 = sk->__sk_common.skc_v6_rcv_saddr;
		*(struct in6_addr *)r->daddr6 = sk->__sk_common.skc_v6_daddr;
		set_v6(r);
	}
	r->e.netns = sk->__sk_common.skc_net.net->ns.inum;
	r->e.sport = sk->__sk_common.skc_num; /* 0 at the final CLOSE; inet_sport keeps it */
	if (!r->e.sport && newstate == TCP_CLOSE)
		r->e.sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	r->e.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	r->e.err = (__u16)sk->sk_err;
	r->e.oldstate = oldstate;
	r->e.newstate = newstate;
	if (sk->__sk_common.skc_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		r->e.flags |= EVENT_FIN_RCVD;
	task = bpf_get_current_task_btf(); /* plain loads: cheaper than the helpers */
	r->e.pid = task->tgid;
	r->e.tid = task->pid;
}

/* ---- owner (docs/design.md, "The owner") ---- */
static __always_inline void remember_owner(__u64 cookie, const struct owner *o)
{
	if (bpf_map_update_elem(&owners, &cookie, o, BPF_ANY))
		add(COUNTER_OWNER_FULL, 1);
}

static __always_inline struct listen_key listener_key(const struct record *r, __u16 family)
{
	return (struct listen_key){.netns = r->e.netns, .port = r->e.sport, .family = family};
}

/* owned_by_task: under the socket lock, a syscall's transition: the current task
 * owns the socket (its comm is worth reading); with kernel_owners the maps learn it. */
static __always_inline void owned_by_task(struct record *r, __u16 family, int newstate)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct listen_key lk;
	struct owner *o, own;

	r->e.flags |= EVENT_TASK_OWNS | EVENT_COMM;
	/* Two 8-byte loads: a task renaming itself right now may show a torn name, as /proc can. */
	*(__u64 *)&r->comm[0] = *(__u64 *)&task->comm[0];
	*(__u64 *)&r->comm[8] = *(__u64 *)&task->comm[8];
	if (!cfg.kernel_owners || newstate == TCP_CLOSE)
		return;
	own = (struct owner){.pid = r->e.pid, .tid = r->e.tid, .cookie = r->e.cookie};
	__builtin_memcpy(own.comm, r->comm, sizeof(own.comm));
	o = bpf_map_lookup_elem(&owners, &r->e.cookie);
	if (!(o && o->tid == r->e.tid && !o->flags))
		remember_owner(r->e.cookie, &own);
	if (newstate == TCP_LISTEN) {
		lk = listener_key(r, family);
		bpf_map_update_elem(&listeners, &lk, &own, BPF_ANY);
	}
}

/* owned_elsewhere: in softirq, whatever task was interrupted. The inode names the
 * owner in /proc; kernel_owners remembers it, or for a new child its listener's. */
static __always_inline void owned_elsewhere(struct record *r, const struct sock *sk, __u16 family,
					    int oldstate, int newstate)
{
	struct socket *sock = sk->sk_socket;
	struct listen_key lk;
	struct owner *o, own;

	if (sock && sock->file)
		r->e.ino = sock->file->f_inode->i_ino;
	if (!cfg.kernel_owners)
		return;
	o = bpf_map_lookup_elem(&owners, &r->e.cookie);
	if (!o && (newstate == TCP_SYN_RECV || oldstate == TCP_SYN_RECV)) {
		lk = listener_key(r, family);
		o = bpf_map_lookup_elem(&listeners, &lk);
		if (o) {
			own = *o;
			own.cookie = r->e.cookie;
			own.flags = EVENT_OWNER_LISTENER;
			remember_owner(r->e.cookie, &own);
			o = &own;
		}
	}
	if (!o)
		return;
	r->e.pid = o->pid;
	r->e.tid = o->tid;
	__builtin_memcpy(r->comm, o->comm, sizeof(r->comm));
	r->e.flags |= EVENT_OWNER_KNOWN | EVENT_COMM | (o->flags & EVENT_OWNER_LISTENER);
}

/* forget_owner: the socket closed, and the listener if it was one. */
static __always_inline void forget_owner(const struct record *r, __u16 family, int oldstate)
{
	struct listen_key lk = listener_key(r, family);
	struct owner *o;

	bpf_map_delete_elem(&owners, &r->e.cookie);
	if (oldstate != TCP_LISTEN)
		return;
	o = bpf_map_lookup_elem(&listeners, &lk);
	if (o && o->cookie == r->e.cookie)
		bpf_map_delete_elem(&listeners, &lk);
}

/* ---- birth: before ~6.13 a child's LISTEN->SYN_RECV precedes its cookie and ports ---- */
/* hold_birth holds a child's LISTEN->SYN_RECV that has no remote port yet. */
static __always_inline int hold_birth(const struct sock *sk, int oldstate, int newstate)
{
	__u64 key, now;

	if (oldstate != TCP_LISTEN || newstate != TCP_SYN_RECV || sk->__sk_common.skc_dport)
		return 0;
	key = (__u64)sk;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&births, &key, &now, BPF_ANY);
	births_held = 1;
	return 1;
}

/* emit_birth sends the child's held birth, if any, as a record of its own with
 * the identity and owner of r, the child's transition out of SYN_RECV. */
static __always_inline void emit_birth(const struct record *r, const struct sock *sk)
{
	__u64 key = (__u64)sk, *born = bpf_map_lookup_elem(&births, &key);
	struct record b;

	if (!born)
		return;
	b.e = r->e;
	b.e.ts_ns = *born;
	b.e.oldstate = TCP_LISTEN;
	b.e.newstate = TCP_SYN_RECV;
	b.e.err = 0;
	b.e.flags &= ~(EVENT_TASK_OWNS | EVENT_FIN_RCVD);
	if (r->e.flags & EVENT_TASK_OWNS) /* the syscall's comm: not known then */
		b.e.flags &= ~EVENT_COMM;
	if (b.e.family == AF_INET6)
		__builtin_memcpy(b.comm, r->comm, sizeof(b) - sizeof(b.e));
	else if (b.e.flags & EVENT_COMM)
		__builtin_memcpy(b.comm, r->comm, sizeof(b.comm));
	bpf_map_delete_elem(&births, &key);
	emit(&b);
}

/* ---- timewait: the timer of the sockets that take over after an active close ---- */
/* note_connect remembers, per CPU, a connect() (CLOSE->SYN_SENT under the socket lock). */
static __always_inline void note_connect(const struct record *r)
{
	__u32 zero = 0;
	struct connect_note *n = bpf_map_lookup_elem(&connects, &zero);

	if (!n)
		return;
	n->ts_ns = r->e.ts_ns;
	n->netns = r->e.netns;
	n->dport = r->e.dport;
	n->family = r->e.family;
	if (r->e.family == AF_INET)
		__builtin_memcpy(n->daddr, r->e.daddr, 4);
	else
		__builtin_memcpy(n->daddr, r->daddr6, 16);
}

/* took_by_connect: a connect() on this CPU in the last 1 ms toward the remote end of r
 * took its timewait socket (tcp_tw_reuse; a peer's RST or SYN matches the local end). */
static __always_inline int took_by_connect(const struct record *r)
{
	__u32 zero = 0;
	struct connect_note *n = bpf_map_lookup_elem(&connects, &zero);

	if (!n || !n->ts_ns || r->e.ts_ns - n->ts_ns > 1000000 || n->netns != r->e.netns ||
	    n->dport != r->e.dport || n->family != r->e.family)
		return 0;
	if (r->e.family == AF_INET ? !addr_eq(n->daddr, r->e.daddr, 4) : !addr_eq(n->daddr, r->daddr6, 16))
		return 0;
	n->ts_ns = 0;
	return 1;
}

/* emit_tw: a record of a timewait socket's timer, read by probe reads (untrusted). */
static __always_inline int emit_tw(const struct timer_list *timer, __u8 kind)
{
	const struct inet_timewait_sock *tw;
	struct task_struct *task;
	struct record r;
	__u16 family;

	if (!cfg.tw_timer_fn || (__u64)timer->function != cfg.tw_timer_fn)
		return 0;
	tw = (void *)((unsigned long)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
	family = BPF_CORE_READ(tw, __tw_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__builtin_memset(&r.e, 0, sizeof(r.e));
	r.e.ts_ns = bpf_ktime_get_ns();
	r.e.kind = kind;
	r.e.cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	r.e.netns = BPF_CORE_READ(tw, __tw_common.skc_net.net, ns.inum);
	r.e.sport = BPF_CORE_READ(tw, __tw_common.skc_num);
	r.e.dport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
	r.e.newstate = BPF_CORE_READ(tw, tw_substate);
	if (family == AF_INET) {
		r.e.family = AF_INET;
		BPF_CORE_READ_INTO(&r.e.saddr, tw, __tw_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&r.e.daddr, tw, __tw_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&r.saddr6, tw, __tw_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&r.daddr6, tw, __tw_common.skc_v6_daddr);
		set_v6(&r);
	}
	task = bpf_get_current_task_btf();
	r.e.pid = task->tgid;
	r.e.tid = task->pid;
	if (filtered_out(&r))
		return 0;
	if (kind == EVENT_KIND_TW_CANCEL && took_by_connect(&r))
		r.e.flags |= EVENT_TW_CONNECT;
	emit(&r);
	return 0;
}

/* ---- the programs ---- */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct record r;
	__u16 family;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (hold_birth(sk, oldstate, newstate))
		return 0;
	read_head(&r, sk, family, oldstate, newstate);
	if (sk->sk_lock.owned)
		owned_by_task(&r, family, newstate);
	else
		owned_elsewhere(&r, sk, family, oldstate, newstate);
	if (cfg.kernel_owners && newstate == TCP_CLOSE)
		forget_owner(&r, family, oldstate);
	if (cfg.tw_timer_fn && oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT &&
	    (r.e.flags & EVENT_TASK_OWNS))
		note_connect(&r);
	if (filtered_out(&r))
		return 0;
	if (oldstate == TCP_SYN_RECV && births_held)
		emit_birth(&r, sk);
	emit(&r);
	return 0;
}

/* The timer programs run for every timer of the host; all but the timewait sockets'
 * leave at emit_tw's first test (docs/design.md, "TIME_WAIT"). Started or re-armed: */
SEC("tp_btf/timer_start")
int BPF_PROG(tw_timer_start, struct timer_list *timer)
{
	return emit_tw(timer, EVENT_KIND_TW_START);
}

/* Stopped: killed, re-armed (a start follows) or run out (an expire follows). */
SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel, struct timer_list *timer)
{
	return emit_tw(timer, EVENT_KIND_TW_CANCEL);
}

/* Run out: the kernel drops the socket now. */
SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tw_timer_expire, struct timer_list *timer)
{
	return emit_tw(timer, EVENT_KIND_TW_EXPIRE);
}
