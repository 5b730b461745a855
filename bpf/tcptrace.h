//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What bpf/tcptrace.c shares with Go (through bpf2go): its types, its
// configuration and its maps; and the few kernel types it reads, trimmed to the
// fields it uses. Every kernel struct is relocated by CO-RE, so field offsets
// come from the running kernel's BTF, not from this file.

#ifndef TCPTRACE_H
#define TCPTRACE_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_ntohs(x) __builtin_bswap16(x)
#define bpf_htonl(x) __builtin_bswap32(x)
#else
#define bpf_ntohs(x) (x)
#define bpf_htonl(x) (x)
#endif

/* Constants from the kernel's UAPI (linux/bpf.h, linux/socket.h, linux/in.h). */
enum {
	BPF_ANY = 0,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
	AF_INET = 2,
	AF_INET6 = 10,
	IPPROTO_TCP = 6,
};

/* TCP states, as include/net/tcp_states.h numbers them. */
enum tcp_state {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,
};

/* Event flags: how the owner was found and what the socket said. */
enum event_flag {
	/* The current task holds the socket lock: a syscall on this socket
	 * (or its deferred backlog work) made the transition, so the current
	 * task is the owner. */
	EVENT_TASK_OWNS = 1,
	/* The owner fields came from the owner map. */
	EVENT_OWNER_KNOWN = 2,
	/* The owner was inherited from the listener (accepted child not yet
	 * closed by its own process). */
	EVENT_OWNER_LISTENER = 4,
	/* The peer's FIN was received (SOCK_DONE). */
	EVENT_FIN_RCVD = 8,
	/* The record carries the owner's comm (struct record.comm). 16 is
	 * userspace's (owner resolved there). */
	EVENT_COMM = 32,
	/* Kernel-only, on a TW_CANCEL record: the cancel ran inside a
	 * connect() toward the timewait socket's destination, so connect()
	 * took its port (tcp_tw_reuse). */
	EVENT_TW_CONNECT = 128,
};

/* What a record reports: a state transition or a step of a timewait
 * socket's timer (inet_timewait_sock.tw_timer, handled by tw_timer_handler). */
enum event_kind {
	EVENT_KIND_STATE = 0,     /* inet_sock_set_state */
	EVENT_KIND_TW_START = 1,  /* timer armed: a timewait socket starts, or is re-armed */
	EVENT_KIND_TW_CANCEL = 2, /* timer stopped: killed, re-armed next, or expiring next */
	EVENT_KIND_TW_EXPIRE = 3, /* timer ran out: the kernel drops the socket */
};

/* Counter slots in the per-CPU counters map. */
enum counter {
	COUNTER_RINGBUF_LOST = 0,   /* bpf_ringbuf_output failed: ring full */
	COUNTER_OWNER_FULL = 1,     /* owner map update failed */
	COUNTER_SEQ = 2,            /* events considered, for simulated drops */
	COUNTER_PRODUCED = 3,       /* bytes this CPU wrote to the ring, for batched wakeups */
	COUNTER_MAX = 4,
};

/* One TCP state transition: the fixed 64-byte head of every record. Records
 * are as short as the transition allows (docs/kernels.md, "Record sizes"): an
 * IPv4 transition in softirq is this head alone (64 bytes), one made by a
 * syscall adds the owner's comm (80), an IPv6 one is all of struct record (112). */
struct event {
	__u64 ts_ns;      /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 cookie;     /* socket cookie: the connection's identity */
	__u64 cgroup_id;  /* cgroup of the socket (its creator's cgroup) */
	__u64 ino;        /* socket inode, 0 when the socket has no file or
	                   * with EVENT_TASK_OWNS (the owner is known) */
	__u32 netns;      /* network namespace inode */
	__u32 pid;        /* owner tgid with EVENT_TASK_OWNS or EVENT_OWNER_KNOWN;
	                   * otherwise the current (interrupted) task's */
	__u32 tid;        /* thread id, likewise */
	__u8 saddr[4];    /* local IPv4 address (AF_INET) */
	__u8 daddr[4];    /* remote IPv4 address */
	__u16 sport;      /* local port, host byte order */
	__u16 dport;      /* remote port, host byte order */
	__u16 err;        /* sk_err at the transition (ECONNREFUSED, ECONNRESET...) */
	__u8 family;      /* AF_INET or AF_INET6 (v4-mapped reported as AF_INET) */
	__u8 oldstate;    /* 0 on timewait records */
	__u8 newstate;    /* timewait records: tw_substate (FIN_WAIT2 or TIME_WAIT) */
	__u8 flags;       /* enum event_flag */
	__u8 kind;        /* enum event_kind */
	__u8 _pad;
};

/* A whole record: the head, then the comm (with EVENT_COMM, and always
 * for AF_INET6), then the IPv6 addresses (AF_INET6 only). emit() sends only
 * the bytes that apply. */
struct record {
	struct event e;
	char comm[16];    /* owner comm */
	__u8 saddr6[16];  /* local IPv6 address */
	__u8 daddr6[16];  /* remote IPv6 address */
};

/* The owning task of a socket. */
struct owner {
	__u32 pid;
	__u32 tid;
	char comm[16];
	__u64 cookie; /* for listeners: the listening socket's cookie */
	__u8 flags;   /* EVENT_OWNER_LISTENER when inherited */
	__u8 _pad[7];
};

/* Key of the listeners map. */
struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 family; /* the socket's own family: a v6 listener's children are
	               * AF_INET6 sockets even for v4-mapped peers */
};

/* Load-time configuration: filters and ring-buffer wakeup threshold. */
struct config {
	__u64 wakeup_bytes; /* force a reader wakeup each time a CPU has written this much */
	__u32 self_pid;     /* tcptrace's own tgid: always passed (self-test) */
	__u32 pid;          /* owner tgid filter, 0 = any */
	__u16 port;         /* either-end port filter, 0 = any */
	__u16 host_family;  /* 0 = any host */
	__u8 host[16];      /* either-end address filter */
	char comm[16];      /* owner comm filter, empty = any */
	__u32 drop_every;   /* tests: drop every Nth state transition as if the ring were full */
	__u32 kernel_owners; /* remember owners per socket in the kernel (pid/comm filters) */
	__u32 _pad;
	__u64 tw_timer_fn;  /* address of tw_timer_handler; 0 = no timewait records */
};

/* The latest connect() seen on a CPU (CLOSE->SYN_SENT under the socket
 * lock): a timewait socket cancelled right after, toward the same
 * destination, was taken by tcp_tw_reuse. */
struct connect_note {
	__u64 ts_ns;
	__u32 netns;
	__u16 dport;     /* remote port, host byte order */
	__u8 family;     /* AF_INET (v4-mapped too) or AF_INET6 */
	__u8 _pad;
	__u8 daddr[16];  /* remote address; IPv4 in the first 4 bytes */
};

/* ---- Kernel types, trimmed; CO-RE relocates every access. ---- */

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

typedef struct {
	__s64 counter;
} atomic64_t;

struct sock_common {
	struct {
		__be32 skc_daddr;
		__be32 skc_rcv_saddr;
	};
	struct {
		__be16 skc_dport;
		__u16 skc_num;
	};
	unsigned short skc_family;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	unsigned long skc_flags;
	atomic64_t skc_cookie;
};

typedef struct {
	int owned;
} socket_lock_t;

struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct sock_cgroup_data {
	struct cgroup *cgroup;
};

struct inode {
	unsigned long i_ino;
};

struct file {
	struct inode *f_inode;
};

struct socket {
	struct file *file;
};

struct sock {
	struct sock_common __sk_common;
	socket_lock_t sk_lock;
	int sk_err;
	struct socket *sk_socket;
	__u16 sk_protocol;
	struct sock_cgroup_data sk_cgrp_data;
};

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
};

struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
};

struct timer_list {
	void (*function)(struct timer_list *);
	unsigned long expires;
};

struct inet_timewait_sock {
	struct sock_common __tw_common;
	unsigned char tw_substate;
	struct timer_list tw_timer;
};

enum sock_flags { /* a bit number, relocated by bpf_core_enum_value */
	SOCK_DONE = 1,
};

#pragma clang attribute pop

/* ---- The program's configuration, globals and maps: Go reaches them by name (bpf2go). ---- */

#include <bpf/bpf_helpers.h>

/* Set from Go before load (spec.Variables["cfg"]); the verifier prunes what it turns off. */
volatile const struct config cfg = {};

/* Set at the first held birth (see hold_birth): until then births is never looked up. */
__u32 births_held;

/* Makes BTF carry struct record, so bpf2go emits its Go type. */
const struct record *unused_record __attribute__((unused));

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

/* Socket cookie -> owning task; only with cfg.kernel_owners (--pid, --comm). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

/* A listener's (netns, port, family) -> its owner; only with cfg.kernel_owners. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner);
} listeners SEC(".maps");

/* Socket pointer -> time of a child's held LISTEN->SYN_RECV (see hold_birth). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} births SEC(".maps");

/* The latest connect() on each CPU (see took_by_connect). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct connect_note);
} connects SEC(".maps");

#endif /* TCPTRACE_H */
