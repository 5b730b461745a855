//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tcptrace: every TCP state change, with the socket's owning task.
//
// One tp_btf program on inet_sock_set_state, and three on the timer
// tracepoints for the timewait sockets that take connections over after
// their CLOSE (see emit_tw).
//
// Owner attribution: a transition made while the current task holds the
// socket lock (sk_lock.owned) was made by a syscall on that socket, so the
// current task is the owner and is remembered per socket cookie. Transitions
// in softirq (owned == 0) run in whatever task was interrupted; they take the
// remembered owner instead. Accepted children inherit their listener's owner
// until their own syscall reveals the real one.

#include "tcptrace.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum sock_flags {
	SOCK_DONE = 1,
};

/* Set from Go before load (spec.Variables["cfg"]). */
volatile const struct config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized from Go before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Socket cookie -> owning task, kept only when a --pid/--comm filter needs
 * the owner of softirq transitions in the kernel (cfg.kernel_owners).
 * Without one, userspace remembers owners per cookie, and the kernel saves
 * the map updates (measured here: ~100 ns per event on average). Removed on
 * CLOSE; LRU-bounded. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

/* (netns, port, family) -> owner of the listening socket, kept only with
 * cfg.kernel_owners, like the owners map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner);
} listeners SEC(".maps");

/* Children born before their identity is set: socket pointer -> time of
 * the LISTEN->SYN_RECV transition. Before Linux 6.13 or so,
 * inet_csk_clone_lock() reports the child's SYN_RECV before it copies the
 * request's cookie and ports into it: the child still carries its
 * listener's cookie and no remote port. The transition is held here and
 * emitted, with the child's real identity, just before its next one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} births SEC(".maps");

/* The latest connect() on each CPU, for took_by_connect. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct connect_note);
} connects SEC(".maps");

/* Set once a birth is held: kernels that report children with their
 * identity never look the births map up. */
__u32 births_held;

/* Makes BTF carry struct record, so bpf2go emits its Go type. */
const struct record *unused_record __attribute__((unused));

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		*v += 1; /* per-CPU slot: no other writer */
}

static __always_inline int is_v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int addr_eq(const __u8 *a, const volatile __u8 *b, int n)
{
	for (int i = 0; i < 16; i++) {
		if (i >= n)
			break;
		if (a[i] != b[i])
			return 0;
	}
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

/* Runtime filters. Sockets owned by tcptrace itself always pass (self-test). */
static __always_inline int filtered_out(const struct record *r)
{
	const struct event *e = &r->e;

	if ((e->flags & (EVENT_TASK_OWNS | EVENT_OWNER_KNOWN)) && e->pid == cfg.self_pid)
		return 0;
	/* An unknown owner is resolved in userspace, which filters again. */
	if (e->flags & (EVENT_TASK_OWNS | EVENT_OWNER_KNOWN)) {
		if (cfg.pid && e->pid != cfg.pid)
			return 1;
		if (cfg.comm[0] && !comm_eq(r->comm, cfg.comm))
			return 1;
	}
	/* At CLOSE->SYN_SENT the local port is still 0 and matches nothing:
	 * a client's ephemeral port is not known yet (a bound one is). */
	if (cfg.port && e->sport != cfg.port && e->dport != cfg.port)
		return 1;
	if (cfg.host_family) {
		if (e->family != cfg.host_family)
			return 1;
		if (e->family == AF_INET) {
			if (!addr_eq(e->saddr, cfg.host, 4) && !addr_eq(e->daddr, cfg.host, 4))
				return 1;
		} else if (!addr_eq(r->saddr6, cfg.host, 16) && !addr_eq(r->daddr6, cfg.host, 16)) {
			return 1;
		}
	}
	return 0;
}

/* set_family sets the family from the addresses read: IPv4 ones in s and
 * d, or IPv6 ones already in r->saddr6 and r->daddr6, v4-mapped IPv6
 * reported as IPv4. */
static __always_inline void set_family(struct record *r, __u16 family, __be32 s, __be32 d)
{
	if (family == AF_INET6 && is_v4_mapped(r->saddr6) && is_v4_mapped(r->daddr6)) {
		family = AF_INET;
		__builtin_memcpy(&s, r->saddr6 + 12, 4);
		__builtin_memcpy(&d, r->daddr6 + 12, 4);
	}
	r->e.family = family;
	if (family == AF_INET) {
		__builtin_memcpy(r->e.saddr, &s, 4);
		__builtin_memcpy(r->e.daddr, &d, 4);
	}
}

/* read_addrs fills the addresses and the family of a full socket. */
static __always_inline void read_addrs(struct record *r, const struct sock *sk, __u16 family)
{
	if (family == AF_INET) {
		set_family(r, AF_INET, sk->__sk_common.skc_rcv_saddr, sk->__sk_common.skc_daddr);
		return;
	}
	/* Direct loads: the addresses lie inside struct sock. */
	for (int i = 0; i < 4; i++) {
		__be32 s = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
		__be32 d = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];

		__builtin_memcpy(r->saddr6 + 4 * i, &s, 4);
		__builtin_memcpy(r->daddr6 + 4 * i, &d, 4);
	}
	set_family(r, AF_INET6, 0, 0);
}

static __always_inline void set_owner(struct owner *o, const struct record *r)
{
	o->pid = r->e.pid;
	o->tid = r->e.tid;
	__builtin_memcpy(o->comm, r->comm, sizeof(o->comm));
	o->cookie = r->e.cookie;
	o->flags = 0;
}

static __always_inline void take_owner(struct record *r, const struct owner *o)
{
	r->e.pid = o->pid;
	r->e.tid = o->tid;
	__builtin_memcpy(r->comm, o->comm, sizeof(r->comm));
	r->e.flags |= EVENT_OWNER_KNOWN | EVENT_COMM | (o->flags & EVENT_OWNER_LISTENER);
}

/* emit copies the first record_size bytes of r into the ring, counting what
 * cannot be delivered. */
static __always_inline void emit(struct record *r)
{
	__u64 flags, size;

	/* Simulated loss applies to state transitions only: the tests that
	 * use it account for transitions (timewait records come and go with
	 * other sockets' timers). */
	if (cfg.drop_every && r->e.kind == EVENT_KIND_STATE) {
		__u32 slot = COUNTER_SEQ;
		__u64 *seq = bpf_map_lookup_elem(&counters, &slot);

		if (seq && ++*seq % cfg.drop_every == 0) {
			count(COUNTER_RINGBUF_LOST);
			return;
		}
	}
	if (r->e.family == AF_INET6) {
		size = sizeof(struct record);
	} else if (r->e.flags & EVENT_COMM) {
		size = __builtin_offsetof(struct record, saddr6);
	} else {
		size = sizeof(struct event);
	}
	/* Batch wakeups: waking the reader per event costs microseconds in
	 * the traced path, so the reader polls on a short timer and is woken
	 * early only once per wakeup_bytes (a power of two) written by this
	 * CPU. Counting per CPU costs nothing; asking the ring for its unread
	 * data (bpf_ringbuf_query) would read cache lines the reader keeps
	 * writing (measured here: ~180 ns per event). */
	flags = BPF_RB_NO_WAKEUP;
	__u32 slot = COUNTER_PRODUCED;
	__u64 *produced = bpf_map_lookup_elem(&counters, &slot);

	if (produced) {
		__u64 before = *produced, after = before + size + 8;

		*produced = after;
		if ((before ^ after) & ~(cfg.wakeup_bytes - 1))
			flags = BPF_RB_FORCE_WAKEUP;
	}
	if (bpf_ringbuf_output(&events, r, size, flags))
		count(COUNTER_RINGBUF_LOST);
}

static __always_inline void listener_key(struct listen_key *lk, const struct record *r, __u16 family)
{
	lk->netns = r->e.netns;
	lk->port = r->e.sport;
	lk->family = family;
}

/* read_head fills the record of a full socket's transition: identity,
 * addresses, ports, states and the current task. Only the bytes sent are
 * written: the head here, the comm when known, the IPv6 addresses in
 * read_addrs. */
static __always_inline void read_head(struct record *r, const struct sock *sk, __u16 family,
				      int oldstate, int newstate)
{
	struct inet_sock *inet = (struct inet_sock *)sk;

	__builtin_memset(&r->e, 0, sizeof(r->e));
	r->e.ts_ns = bpf_ktime_get_ns();
	/* The cookie is made on first use; once made, a plain load reads it
	 * for less than the helper's call. */
	r->e.cookie = sk->__sk_common.skc_cookie.counter;
	if (!r->e.cookie)
		r->e.cookie = bpf_get_socket_cookie((void *)sk);
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup)) {
		struct cgroup *cg = sk->sk_cgrp_data.cgroup;

		if (cg)
			r->e.cgroup_id = cg->kn->id;
	}
	read_addrs(r, sk, family);
	r->e.netns = sk->__sk_common.skc_net.net->ns.inum;
	/* The local port: skc_num (host order, a direct load) while the
	 * socket holds it; at the final CLOSE skc_num reads 0 but inet_sport,
	 * which the tracepoint itself records, keeps it. inet_sock lies beyond
	 * struct sock, where the verifier's view of the argument ends, hence
	 * the probe read, only then. */
	r->e.sport = sk->__sk_common.skc_num;
	if (!r->e.sport && newstate == TCP_CLOSE)
		r->e.sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	r->e.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	r->e.err = (__u16)sk->sk_err;
	r->e.oldstate = oldstate;
	r->e.newstate = newstate;
	if (sk->__sk_common.skc_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		r->e.flags |= EVENT_FIN_RCVD;
	/* Plain loads from the current task: cheaper than the pid/tgid and
	 * comm helpers (measured here: ~70 ns less per event). */
	struct task_struct *task = bpf_get_current_task_btf();

	r->e.pid = task->tgid;
	r->e.tid = task->pid;
}

/* owned_by_task: a syscall on this socket made the transition, so the
 * current task owns it. Only then is the current comm worth its cost (the
 * interrupted task's name in softirq means nothing). */
static __always_inline void owned_by_task(struct record *r, int newstate)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct owner *o, own = {};

	r->e.flags |= EVENT_TASK_OWNS | EVENT_COMM;
	/* Two 8-byte loads; a task renaming itself at this instant may show
	 * a torn name, as /proc can. */
	*(__u64 *)&r->comm[0] = *(__u64 *)&task->comm[0];
	*(__u64 *)&r->comm[8] = *(__u64 *)&task->comm[8];
	if (cfg.kernel_owners && newstate != TCP_CLOSE) {
		o = bpf_map_lookup_elem(&owners, &r->e.cookie);
		if (!(o && o->tid == r->e.tid && !o->flags)) {
			set_owner(&own, r);
			if (bpf_map_update_elem(&owners, &r->e.cookie, &own, BPF_ANY))
				count(COUNTER_OWNER_FULL);
		}
	}
}

/* owned_elsewhere: a transition in softirq, in whatever task was
 * interrupted. The owner is the remembered one, if the kernel keeps them. */
static __always_inline void owned_elsewhere(struct record *r, const struct sock *sk, __u16 family,
					    int oldstate, int newstate)
{
	struct listen_key lk = {};
	struct owner *o, own;

	/* The inode names the owner in /proc when nothing else does: needed
	 * only here, where the current task is not the owner. */
	struct socket *sock = sk->sk_socket;

	if (sock && sock->file)
		r->e.ino = sock->file->f_inode->i_ino;
	if (cfg.kernel_owners) {
		o = bpf_map_lookup_elem(&owners, &r->e.cookie);
		if (o)
			take_owner(r, o);
	}
	if (cfg.kernel_owners && !(r->e.flags & EVENT_OWNER_KNOWN) &&
	    (newstate == TCP_SYN_RECV || oldstate == TCP_SYN_RECV)) {
		/* A child of a listener, not yet accepted and closed by its own
		 * process: the listener's owner. Only for the in-kernel filters:
		 * otherwise userspace, which sees every LISTEN, gives children
		 * their listener's owner. */
		listener_key(&lk, r, family);
		o = bpf_map_lookup_elem(&listeners, &lk);
		if (o) {
			own = *o;
			own.cookie = r->e.cookie;
			own.flags = EVENT_OWNER_LISTENER;
			take_owner(r, &own);
			if (bpf_map_update_elem(&owners, &r->e.cookie, &own, BPF_ANY))
				count(COUNTER_OWNER_FULL);
		}
	}
	if (r->e.family == AF_INET6 && !(r->e.flags & EVENT_COMM))
		__builtin_memset(r->comm, 0, sizeof(r->comm));
}

/* keep_listeners maintains the kernel's owner and listener maps (only with
 * cfg.kernel_owners): a listener's owner at LISTEN, forgotten at CLOSE. */
static __always_inline void keep_listeners(const struct record *r, __u16 family, int oldstate, int newstate)
{
	struct listen_key lk = {};
	struct owner *o, own = {};

	if (newstate == TCP_LISTEN && (r->e.flags & EVENT_TASK_OWNS)) {
		listener_key(&lk, r, family);
		set_owner(&own, r);
		bpf_map_update_elem(&listeners, &lk, &own, BPF_ANY);
	}
	if (newstate == TCP_CLOSE) {
		bpf_map_delete_elem(&owners, &r->e.cookie);
		if (oldstate == TCP_LISTEN) {
			listener_key(&lk, r, family);
			o = bpf_map_lookup_elem(&listeners, &lk);
			if (o && o->cookie == r->e.cookie)
				bpf_map_delete_elem(&listeners, &lk);
		}
	}
}

/* note_connect remembers, per CPU, a connect() (CLOSE->SYN_SENT under the
 * socket lock): a timewait socket toward the same destination cancelled
 * right after on this CPU was taken by tcp_tw_reuse (see took_by_connect). */
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

/* emit_birth emits the child's held LISTEN->SYN_RECV, if any, with its
 * real identity, just before its first transition out of SYN_RECV (r). */
static __always_inline void emit_birth(struct record *r, const struct sock *sk)
{
	__u64 key = (__u64)sk, *born = bpf_map_lookup_elem(&births, &key);
	__u64 ts = r->e.ts_ns;
	__u16 err = r->e.err;
	__u8 fl = r->e.flags, newstate = r->e.newstate;

	if (!born)
		return;
	r->e.ts_ns = *born;
	r->e.oldstate = TCP_LISTEN;
	r->e.newstate = TCP_SYN_RECV;
	r->e.err = 0;
	r->e.flags &= ~(EVENT_TASK_OWNS | EVENT_FIN_RCVD);
	if (fl & EVENT_TASK_OWNS) /* the comm is the syscall's, not known then */
		r->e.flags &= ~EVENT_COMM;
	bpf_map_delete_elem(&births, &key);
	emit(r);
	r->e.ts_ns = ts;
	r->e.oldstate = TCP_SYN_RECV;
	r->e.newstate = newstate;
	r->e.err = err;
	r->e.flags = fl;
}

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

	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV && !sk->__sk_common.skc_dport) {
		/* A child without its identity yet: held (see births). */
		__u64 key = (__u64)sk, now = bpf_ktime_get_ns();

		bpf_map_update_elem(&births, &key, &now, BPF_ANY);
		births_held = 1;
		return 0;
	}

	read_head(&r, sk, family, oldstate, newstate);
	if (sk->sk_lock.owned)
		owned_by_task(&r, newstate);
	else
		owned_elsewhere(&r, sk, family, oldstate, newstate);
	if (cfg.kernel_owners)
		keep_listeners(&r, family, oldstate, newstate);
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

/* ---- Timewait sockets, from the kernel's timer tracepoints. ----
 *
 * These programs run for every kernel timer armed, stopped or run on the
 * host: all but the timewait sockets' leave at the first test. */

static __always_inline int is_tw_timer(const struct timer_list *timer)
{
	return cfg.tw_timer_fn && (__u64)timer->function == cfg.tw_timer_fn;
}

/* took_by_connect reports whether the cancelled timewait socket of r was
 * taken by the connect() this CPU noted just before, toward its remote
 * address and port, and then forgets that connect. A RST or a SYN that kills
 * a timewait socket comes from the peer: the noted connect (on loopback, the
 * peer's own) is toward the local end, not the remote one. */
static __always_inline int took_by_connect(const struct record *r)
{
	__u32 zero = 0;
	struct connect_note *n = bpf_map_lookup_elem(&connects, &zero);

	if (!n || !n->ts_ns || r->e.ts_ns - n->ts_ns > 1000000)
		return 0;
	if (n->netns != r->e.netns || n->dport != r->e.dport || n->family != r->e.family)
		return 0;
	if (r->e.family == AF_INET ? !addr_eq(n->daddr, r->e.daddr, 4) : !addr_eq(n->daddr, r->daddr6, 16))
		return 0;
	n->ts_ns = 0;
	return 1;
}

/* emit_tw emits a record for a timewait socket. Every field comes through a
 * probe read: from a timer, the socket is reached by container_of, an
 * untrusted pointer. */
static __always_inline void emit_tw(const struct inet_timewait_sock *tw, __u8 kind)
{
	struct task_struct *task;
	struct record r;
	__u16 family;

	family = BPF_CORE_READ(tw, __tw_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	__builtin_memset(&r.e, 0, sizeof(r.e));
	r.e.ts_ns = bpf_ktime_get_ns();
	r.e.kind = kind;
	r.e.cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	r.e.netns = BPF_CORE_READ(tw, __tw_common.skc_net.net, ns.inum);
	r.e.sport = BPF_CORE_READ(tw, __tw_common.skc_num);
	r.e.dport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
	r.e.newstate = BPF_CORE_READ(tw, tw_substate);
	if (family == AF_INET) {
		set_family(&r, AF_INET, BPF_CORE_READ(tw, __tw_common.skc_rcv_saddr),
			   BPF_CORE_READ(tw, __tw_common.skc_daddr));
	} else {
		bpf_core_read(r.saddr6, 16, &tw->__tw_common.skc_v6_rcv_saddr);
		bpf_core_read(r.daddr6, 16, &tw->__tw_common.skc_v6_daddr);
		set_family(&r, AF_INET6, 0, 0);
		__builtin_memset(r.comm, 0, sizeof(r.comm));
	}
	task = bpf_get_current_task_btf();
	r.e.pid = task->tgid;
	r.e.tid = task->pid;
	if (filtered_out(&r))
		return;
	if (kind == EVENT_KIND_TW_CANCEL && took_by_connect(&r))
		r.e.flags |= EVENT_TW_CONNECT;
	emit(&r);
}

/* tw_of returns the timewait socket of a timewait timer. */
static __always_inline const struct inet_timewait_sock *tw_of(const struct timer_list *timer)
{
	return (void *)((unsigned long)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
}

/* A timewait socket starts, or its timer is re-armed: a FIN_WAIT2 one got
 * the peer's FIN, a TIME_WAIT one a retransmitted FIN. A re-arm whose new
 * expiry falls in the timer's old wheel bucket (~2 s wide for timers ~60 s
 * away at HZ=250) reports nothing: mod_timer() only updates the expiry. */
SEC("tp_btf/timer_start")
int BPF_PROG(tw_timer_start, struct timer_list *timer)
{
	if (is_tw_timer(timer))
		emit_tw(tw_of(timer), EVENT_KIND_TW_START);
	return 0;
}

/* A timewait socket's timer stops: it is killed (alone), re-armed (a start
 * follows) or about to run (an expire follows). */
SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel, struct timer_list *timer)
{
	if (is_tw_timer(timer))
		emit_tw(tw_of(timer), EVENT_KIND_TW_CANCEL);
	return 0;
}

/* A timewait socket's timer ran out: the kernel drops it now. */
SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tw_timer_expire, struct timer_list *timer)
{
	if (is_tw_timer(timer))
		emit_tw(tw_of(timer), EVENT_KIND_TW_EXPIRE);
	return 0;
}
