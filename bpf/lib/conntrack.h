/* conntrack.h — the flows an endpoint's policy has let through, so only new flows meet policy.
 *
 * One LRU hash of direction-tagged tuples. An entry is made by the first packet of an allowed
 * flow, tagged with the direction that packet travelled (from or to the pod). At a pod's hook a
 * packet is then
 *
 *   established — its own tuple was created in this direction (from this pod at its egress,
 *                 to this pod at its ingress), or
 *   a reply     — its reversed tuple was created in the other direction,
 *
 * and passes without meeting policy: an established flow costs one lookup, a reply two. Pod
 * addresses are unique on a node, so the tuple and the direction pick out the pod: two pods of
 * one node talking make two entries, one at each end, each under its own policy.
 *
 * TCP state is kept only as far as timeouts need it (flags below; node-loader's GC turns them
 * into syn-sent, established or closing and expires entries by `last_seen_ns`). A SYN on a
 * closed entry (RST, or FIN both ways) starts a new flow that meets policy again; a TCP packet
 * with no entry at all — mid-stream, or after the entry expired — is a new flow too.
 */
#ifndef WEIR_CONNTRACK_H
#define WEIR_CONNTRACK_H

#include "common.h"
#include "endpoints.h"
#include "packet.h"

/* ct_entry.flags. */
#define WEIR_CT_F_SYN 1		/* opened by a SYN */
#define WEIR_CT_F_REPLIED 2	/* a reply has been seen */
#define WEIR_CT_F_FIN_FWD 4	/* FIN in the direction that opened it */
#define WEIR_CT_F_FIN_REV 8	/* FIN in reply */
#define WEIR_CT_F_RST 16	/* RST either way */

/* last_seen_ns is refreshed at most this often: no write per packet on busy flows. */
#define WEIR_CT_REFRESH_NS WEIR_NSEC_PER_SEC

/* Key of weir_ct_v1. 16 bytes; pad must be zero. */
struct ct_key {
	__be32 saddr;		/* the opening packet's source, network byte order */
	__be32 daddr;
	__be16 sport;		/* network byte order; ICMP echo: see packet.h */
	__be16 dport;
	__u8 protocol;
	__u8 direction;		/* enum weir_direction the opening packet travelled */
	__u8 pad[2];
};

/* Value of weir_ct_v1. 40 bytes; pad always zero. */
struct ct_entry {
	__u64 created_ns;	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the opening packet */
	__u64 last_seen_ns;	/* the same clock, refreshed at most every WEIR_CT_REFRESH_NS */
	__u64 cookie;		/* the policy rule that allowed it (0: not enforced) */
	__u64 flags;		/* WEIR_CT_F_*, set with atomic OR (both directions write it; BCC's
				 * BPF target has 64-bit atomic OR only) */
	__u32 remote_identity;	/* the remote end's identity when it was allowed */
	__u32 pad;
};

BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_entry, weir_ct_v1, WEIR_MAX_CT,
		 WEIR_PIN_DIR "/weir_ct_v1");

enum weir_ct_result {
	WEIR_CT_NEW = 0,
	WEIR_CT_ESTABLISHED = 1,
	WEIR_CT_REPLY = 2,
};

static __always_inline __u8 ct_opposite(__u8 dir)
{
	return dir == WEIR_DIR_FROM_POD ? WEIR_DIR_TO_POD : WEIR_DIR_FROM_POD;
}

static __always_inline int ct_closed(__u64 flags)
{
	return (flags & WEIR_CT_F_RST) ||
	       ((flags & WEIR_CT_F_FIN_FWD) && (flags & WEIR_CT_F_FIN_REV));
}

/* Note a packet of a tracked flow on its entry: flags (only when they change) and last_seen. */
static __always_inline void ct_touch(struct ct_entry *e, const struct tuple *t, int reply,
				     __u64 now)
{
	__u64 add = 0;

	if (reply)
		add |= WEIR_CT_F_REPLIED;
	if (t->protocol == WEIR_IPPROTO_TCP) {
		if (t->tcp_flags & WEIR_TCP_RST)
			add |= WEIR_CT_F_RST;
		if (t->tcp_flags & WEIR_TCP_FIN)
			add |= reply ? WEIR_CT_F_FIN_REV : WEIR_CT_F_FIN_FWD;
	}
	if ((e->flags & add) != add) {
		__sync_fetch_and_or(&e->flags, add);
		e->last_seen_ns = now;
	} else if (now - e->last_seen_ns > WEIR_CT_REFRESH_NS) {
		e->last_seen_ns = now;
	}
}

/* Is this packet, seen in direction `dir`, part of a flow already allowed? */
static __always_inline int ct_lookup(const struct tuple *t, __u8 dir, __u64 now)
{
	struct ct_key key = { .saddr = t->saddr, .daddr = t->daddr, .sport = t->sport,
			      .dport = t->dport, .protocol = t->protocol, .direction = dir };
	struct ct_entry *e;

	e = weir_ct_v1.lookup(&key);
	if (e) {
		/* A new SYN on a closed connection (port reuse) is a new flow. */
		if (t->protocol == WEIR_IPPROTO_TCP && ct_closed(e->flags) &&
		    (t->tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN)
			return WEIR_CT_NEW;
		ct_touch(e, t, 0, now);
		return WEIR_CT_ESTABLISHED;
	}
	key.saddr = t->daddr;
	key.daddr = t->saddr;
	key.sport = t->dport;
	key.dport = t->sport;
	key.direction = ct_opposite(dir);
	e = weir_ct_v1.lookup(&key);
	if (e) {
		ct_touch(e, t, 1, now);
		return WEIR_CT_REPLY;
	}
	return WEIR_CT_NEW;
}

/* An allowed new flow: its entry, replacing any closed one. */
static __always_inline void ct_create(const struct tuple *t, __u8 dir, __u64 now, __u64 cookie,
				      __u32 remote_identity)
{
	struct ct_key key = { .saddr = t->saddr, .daddr = t->daddr, .sport = t->sport,
			      .dport = t->dport, .protocol = t->protocol, .direction = dir };
	struct ct_entry e = { .created_ns = now, .last_seen_ns = now, .cookie = cookie,
			      .remote_identity = remote_identity };

	if (t->protocol == WEIR_IPPROTO_TCP) {
		if (t->tcp_flags & WEIR_TCP_SYN)
			e.flags |= WEIR_CT_F_SYN;
		if (t->tcp_flags & WEIR_TCP_RST)
			e.flags |= WEIR_CT_F_RST;
		if (t->tcp_flags & WEIR_TCP_FIN)
			e.flags |= WEIR_CT_F_FIN_FWD;
	}
	weir_ct_v1.update(&key, &e);
}

#endif /* WEIR_CONNTRACK_H */
