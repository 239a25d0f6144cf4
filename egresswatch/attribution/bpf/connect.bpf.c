// SPDX-License-Identifier: GPL-2.0
// egresswatch: who opens each connection, seen at connect time in the kernel.
//
// cgroup/connect4|6 note the calling process against the socket's cookie; sockops at
// TCP_CONNECT_CB (the SYN is about to leave, the source port is chosen) emit the full 4-tuple
// with that process. UDP: sendmsg4|6 (unconnected sends: the port is bound by then) emit the
// 4-tuple, at most once a second per socket and destination; connect4|6 on a UDP socket emit
// the destination only (its port is bound after the hook). Attached to the cgroup v2 root, so
// every process on the host and in every container is seen. The programs never deny anything.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define PROTO_TCP 6
#define PROTO_UDP 17

struct owner {
	__u64 cgroup;
	__u32 tgid;
	__u32 pid;
	__u32 uid;
	__u32 gid;
	char comm[16];
};

struct event {
	__u64 ts;       // CLOCK_MONOTONIC ns
	__u64 cookie;
	struct owner owner;
	__u8 family;
	__u8 proto;
	__u16 sport;    // host order; 0: not bound yet
	__u16 dport;    // host order
	__u16 pad;
	__u8 saddr[16]; // network order; IPv4 in the first 4 bytes; zero: unknown
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

struct sent_key {
	__u64 cookie;
	__u8 daddr[16];
	__u16 dport;
	__u16 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sent_key);
	__type(value, __u64);
} sent SEC(".maps");

static __always_inline void current_owner(struct owner *o)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	o->tgid = id >> 32;
	o->pid = (__u32)id;
	o->uid = (__u32)ug;
	o->gid = ug >> 32;
	o->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline struct event *reserve(__u64 cookie, __u8 family, __u8 proto)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->cookie = cookie;
	e->family = family;
	e->proto = proto;
	return e;
}

static __always_inline int on_connect(struct bpf_sock_addr *ctx, __u8 family)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct owner o = {};
	current_owner(&o);
	if (ctx->protocol == PROTO_TCP) {
		bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
		return 1;
	}
	if (ctx->protocol != PROTO_UDP)
		return 1;
	struct event *e = reserve(cookie, family, PROTO_UDP);
	if (!e)
		return 1;
	e->owner = o;
	e->dport = bpf_ntohs(ctx->user_port);
	if (family == AF_INET) {
		__u32 d = ctx->user_ip4;
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		__u32 d[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
		__builtin_memcpy(e->daddr, d, 16);
	}
	bpf_ringbuf_submit(e, 0);
	return 1;
}

SEC("cgroup/connect4")
int ew_connect4(struct bpf_sock_addr *ctx) { return on_connect(ctx, AF_INET); }

SEC("cgroup/connect6")
int ew_connect6(struct bpf_sock_addr *ctx) { return on_connect(ctx, AF_INET6); }

static __always_inline int on_sendmsg(struct bpf_sock_addr *ctx, __u8 family)
{
	if (ctx->protocol != PROTO_UDP)
		return 1;
	struct sent_key k = {};
	k.cookie = bpf_get_socket_cookie(ctx);
	k.dport = bpf_ntohs(ctx->user_port);
	if (family == AF_INET) {
		__u32 d = ctx->user_ip4;
		__builtin_memcpy(k.daddr, &d, 4);
	} else {
		__u32 d[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
		__builtin_memcpy(k.daddr, d, 16);
	}
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&sent, &k);
	if (last && now - *last < 1000000000ULL)
		return 1;  // this socket told us about this destination less than a second ago
	bpf_map_update_elem(&sent, &k, &now, BPF_ANY);
	struct event *e = reserve(k.cookie, family, PROTO_UDP);
	if (!e)
		return 1;
	current_owner(&e->owner);
	e->dport = k.dport;
	__builtin_memcpy(e->daddr, k.daddr, 16);
	struct bpf_sock *sk = ctx->sk;
	if (sk)
		e->sport = sk->src_port;
	if (family == AF_INET) {
		__u32 s = ctx->msg_src_ip4;
		if (!s && sk)
			s = sk->src_ip4;
		__builtin_memcpy(e->saddr, &s, 4);
	}
	bpf_ringbuf_submit(e, 0);
	return 1;
}

SEC("cgroup/sendmsg4")
int ew_sendmsg4(struct bpf_sock_addr *ctx) { return on_sendmsg(ctx, AF_INET); }

SEC("cgroup/sendmsg6")
int ew_sendmsg6(struct bpf_sock_addr *ctx) { return on_sendmsg(ctx, AF_INET6); }

SEC("sockops")
int ew_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct owner *o = bpf_map_lookup_elem(&owners, &cookie);
	if (!o)
		return 1;
	__u8 family = skops->family == AF_INET6 ? AF_INET6 : AF_INET;
	struct event *e = reserve(cookie, family, PROTO_TCP);
	if (e) {
		e->owner = *o;
		e->sport = skops->local_port;
		e->dport = bpf_ntohl(skops->remote_port);  // the be16 port, shifted up 16 bits
		if (family == AF_INET) {
			__u32 s = skops->local_ip4, d = skops->remote_ip4;
			__builtin_memcpy(e->saddr, &s, 4);
			__builtin_memcpy(e->daddr, &d, 4);
		} else {
			__u32 s[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3]};
			__u32 d[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3]};
			__builtin_memcpy(e->saddr, s, 16);
			__builtin_memcpy(e->daddr, d, 16);
		}
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&owners, &cookie);
	return 1;
}
