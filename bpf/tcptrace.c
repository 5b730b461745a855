//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tcptrace: every TCP state change, with the socket's owning task.
//
// One tp_btf program on inet_sock_set_state. Owner attribution: a transition
// made while the current task holds the socket lock (sk_lock.owned) was made
// by a syscall on that socket, so the current task is the owner and is
// remembered per socket cookie. Transitions in softirq (owned == 0) run in
// whatever task was interrupted; they take the remembered owner instead.
// Accepted children inherit their listener's owner until their own syscall
// reveals the real one.

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

/* The event under construction: filled and filtered here, then copied to
 * the ring, so filtered-out transitions never take ring space. Per-CPU and
 * safe: the kernel never nests this program on one CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

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

/* (netns, port) -> owner of the listening socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner);
} listeners SEC(".maps");

/* A record in the ring: the event and the ring's 8-byte header. */
#define RECORD_SIZE (sizeof(struct event) + 8)

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

/* Makes BTF carry struct event, so bpf2go emits its Go type. */
const struct event *unused_event __attribute__((unused));

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
static __always_inline int filtered_out(const struct event *e)
{
	if ((e->flags & (EVENT_TASK_OWNS | EVENT_OWNER_KNOWN)) && e->pid == cfg.self_pid)
		return 0;
	/* An unknown owner is resolved in userspace, which filters again. */
	if (e->flags & (EVENT_TASK_OWNS | EVENT_OWNER_KNOWN)) {
		if (cfg.pid && e->pid != cfg.pid)
			return 1;
		if (cfg.comm[0] && !comm_eq(e->comm, cfg.comm))
			return 1;
	}
	/* At CLOSE->SYN_SENT the local port is still 0 and matches nothing:
	 * a client's ephemeral port is not known yet (a bound one is). */
	if (cfg.port && e->sport != cfg.port && e->dport != cfg.port)
		return 1;
	if (cfg.host_family) {
		int n = cfg.host_family == AF_INET ? 4 : 16;

		if (e->family != cfg.host_family)
			return 1;
		if (!addr_eq(e->saddr, cfg.host, n) && !addr_eq(e->daddr, cfg.host, n))
			return 1;
	}
	return 0;
}

static __always_inline void read_addrs(struct event *e, const struct sock *sk)
{
	if (e->family == AF_INET) {
		__be32 s = sk->__sk_common.skc_rcv_saddr;
		__be32 d = sk->__sk_common.skc_daddr;

		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
		return;
	}
	/* Direct loads: the addresses lie inside struct sock. */
	for (int i = 0; i < 4; i++) {
		__be32 s = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
		__be32 d = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];

		__builtin_memcpy(e->saddr + 4 * i, &s, 4);
		__builtin_memcpy(e->daddr + 4 * i, &d, 4);
	}
	if (is_v4_mapped(e->saddr) && is_v4_mapped(e->daddr)) {
		e->family = AF_INET;
		__builtin_memcpy(e->saddr, e->saddr + 12, 4);
		__builtin_memcpy(e->daddr, e->daddr + 12, 4);
		__builtin_memset(e->saddr + 4, 0, 12);
		__builtin_memset(e->daddr + 4, 0, 12);
	}
}

static __always_inline void set_owner(struct owner *o, const struct event *e)
{
	o->pid = e->task_pid;
	o->tid = e->task_tid;
	__builtin_memcpy(o->comm, e->task_comm, sizeof(o->comm));
	o->cookie = e->cookie;
	o->flags = 0;
}

static __always_inline void take_owner(struct event *e, const struct owner *o)
{
	e->pid = o->pid;
	e->tid = o->tid;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	e->flags |= EVENT_OWNER_KNOWN | (o->flags & EVENT_OWNER_LISTENER);
}

/* emit copies e into the ring, counting what cannot be delivered. */
static __always_inline void emit(struct event *e)
{
	__u64 flags;

	if (cfg.drop_every) {
		__u32 slot = COUNTER_SEQ;
		__u64 *seq = bpf_map_lookup_elem(&counters, &slot);

		if (seq && ++*seq % cfg.drop_every == 0) {
			count(COUNTER_RINGBUF_LOST);
			return;
		}
	}
	/* Batch wakeups: waking the reader per event costs microseconds in
	 * the traced path, so the reader polls on a short timer and is woken
	 * early only once per wakeup_bytes written by this CPU. Counting per
	 * CPU costs nothing; asking the ring for its unread data
	 * (bpf_ringbuf_query) would read cache lines the reader keeps writing
	 * (measured here: ~180 ns per event). */
	flags = BPF_RB_NO_WAKEUP;
	__u32 slot = COUNTER_PRODUCED;
	__u64 *produced = bpf_map_lookup_elem(&counters, &slot);

	if (produced) {
		__u64 before = *produced;

		*produced = before + RECORD_SIZE;
		if (before / cfg.wakeup_bytes != *produced / cfg.wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	if (bpf_ringbuf_output(&events, e, sizeof(*e), flags))
		count(COUNTER_RINGBUF_LOST);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct inet_sock *inet = (struct inet_sock *)sk;
	struct listen_key lk = {};
	struct owner *o, own = {};
	struct event *e;
	__u16 family;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;

	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV && !sk->__sk_common.skc_dport) {
		__u64 key = (__u64)sk, now = bpf_ktime_get_ns();

		bpf_map_update_elem(&births, &key, &now, BPF_ANY);
		return 0;
	}

	__u32 zero = 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));

	__u64 id = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->cookie = bpf_get_socket_cookie((void *)sk);
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup)) {
		struct cgroup *cg = sk->sk_cgrp_data.cgroup;

		if (cg)
			e->cgroup_id = cg->kn->id;
	}
	struct socket *sock = sk->sk_socket;
	if (sock && sock->file)
		e->ino = sock->file->f_inode->i_ino;
	e->family = family;
	read_addrs(e, sk);
	e->netns = sk->__sk_common.skc_net.net->ns.inum;
	/* The local port: skc_num (host order, a direct load) while the
	 * socket holds it; at the final CLOSE skc_num reads 0 but inet_sport,
	 * which the tracepoint itself records, keeps it. inet_sock lies beyond
	 * struct sock, where the verifier's view of the argument ends, hence
	 * the probe read, only then. */
	e->sport = sk->__sk_common.skc_num;
	if (!e->sport && newstate == TCP_CLOSE)
		e->sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	e->err = (__u16)sk->sk_err;
	e->oldstate = oldstate;
	e->newstate = newstate;
	if (sk->__sk_common.skc_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		e->flags |= EVENT_FIN_RCVD;
	e->task_pid = id >> 32;
	e->task_tid = (__u32)id;

	if (sk->sk_lock.owned) {
		/* A syscall on this socket: the current task owns it. Only then
		 * is the current comm worth its cost (the interrupted task's
		 * name in softirq means nothing). */
		e->flags |= EVENT_TASK_OWNS;
		e->pid = e->task_pid;
		e->tid = e->task_tid;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memcpy(e->task_comm, e->comm, sizeof(e->comm));
		if (cfg.kernel_owners && newstate != TCP_CLOSE) {
			o = bpf_map_lookup_elem(&owners, &e->cookie);
			if (!(o && o->tid == e->tid && !o->flags)) {
				set_owner(&own, e);
				if (bpf_map_update_elem(&owners, &e->cookie, &own, BPF_ANY))
					count(COUNTER_OWNER_FULL);
			}
		}
	} else {
		if (cfg.kernel_owners) {
			o = bpf_map_lookup_elem(&owners, &e->cookie);
			if (o)
				take_owner(e, o);
		}
		if (!(e->flags & EVENT_OWNER_KNOWN) &&
		    (newstate == TCP_SYN_RECV || oldstate == TCP_SYN_RECV)) {
			/* A child of a listener, not yet accepted and closed by
			 * its own process: the listener's owner. */
			lk.netns = e->netns;
			lk.port = e->sport;
			lk.family = family;
			o = bpf_map_lookup_elem(&listeners, &lk);
			if (o) {
				own = *o;
				own.cookie = e->cookie;
				own.flags = EVENT_OWNER_LISTENER;
				take_owner(e, &own);
				if (cfg.kernel_owners &&
				    bpf_map_update_elem(&owners, &e->cookie, &own, BPF_ANY))
					count(COUNTER_OWNER_FULL);
			}
		}
	}

	if (newstate == TCP_LISTEN && (e->flags & EVENT_TASK_OWNS)) {
		lk.netns = e->netns;
		lk.port = e->sport;
		lk.family = family;
		set_owner(&own, e);
		bpf_map_update_elem(&listeners, &lk, &own, BPF_ANY);
	}
	if (newstate == TCP_CLOSE) {
		if (cfg.kernel_owners)
			bpf_map_delete_elem(&owners, &e->cookie);
		if (oldstate == TCP_LISTEN) {
			lk.netns = e->netns;
			lk.port = e->sport;
			lk.family = family;
			o = bpf_map_lookup_elem(&listeners, &lk);
			if (o && o->cookie == e->cookie)
				bpf_map_delete_elem(&listeners, &lk);
		}
	}

	if (filtered_out(e))
		return 0;

	if (oldstate == TCP_SYN_RECV) {
		__u64 key = (__u64)sk, *born = bpf_map_lookup_elem(&births, &key);

		if (born) {
			/* The held birth, now with the child's own identity. */
			__u64 ts = e->ts_ns;
			__u16 err = e->err;
			__u8 fl = e->flags;

			e->ts_ns = *born;
			e->oldstate = TCP_LISTEN;
			e->newstate = TCP_SYN_RECV;
			e->err = 0;
			e->flags &= ~(EVENT_TASK_OWNS | EVENT_FIN_RCVD);
			bpf_map_delete_elem(&births, &key);
			emit(e);
			e->ts_ns = ts;
			e->oldstate = TCP_SYN_RECV;
			e->newstate = newstate;
			e->err = err;
			e->flags = fl;
		}
	}
	emit(e);
	return 0;
}
