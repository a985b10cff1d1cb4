/* policy.h — each endpoint's compiled NetworkPolicy, and the verdict for a new flow.
 *
 * One LPM trie holds every endpoint's entries: (endpoint, slot, direction, remote identity,
 * protocol, port) -> (verdict, cookie). Protocol and port come last, the port in network byte
 * order, so the trie's longest-prefix match does the port work: a port range (endPort) is a few
 * prefixes, "any port" ends the prefix after the protocol, "any protocol" before it. The remote
 * identity is always matched whole; "any remote" is identity 0, looked up separately. So a new
 * flow costs at most three lookups here whatever the number of rules:
 *
 *   1. the remote's identity, 2. identity 0 (any remote), 3. with ipBlock-matches-pods, the
 *   CIDR identity of a pod's (or node's) address (ipcache.h).
 *
 * Within one lookup the most specific (protocol, port) entry decides; across the lookups a DENY
 * wins over an ALLOW. An enforced direction with no entry matching is denied with the
 * endpoint's default cookie (the policy that isolated it). Policy-compiler never writes two
 * entries for one key; node-loader merges what would collide (deny first).
 *
 * Atomic changes: weir_ep_policy_v1 (by endpoint) names the endpoint's active slot. node-loader
 * writes a new policy into the other slot, then replaces the config entry (one update: a
 * packet sees the old policy or the new one, never a mix), then deletes the old slot's entries.
 */
#ifndef WEIR_POLICY_H
#define WEIR_POLICY_H

#include "common.h"
#include "endpoints.h"
#include "reasons.h"

/* Prefix lengths of weir_policy_v1 keys: bits after `prefixlen`. */
#define WEIR_POLICY_PREFIX_ANY_PROTO 80	/* ifindex, identity, slot, direction */
#define WEIR_POLICY_PREFIX_ANY_PORT 88	/* ... and the protocol */
#define WEIR_POLICY_PREFIX_PORT0 96	/* ... and pad: add the port prefix's bits (0-16) */
#define WEIR_POLICY_PREFIX_FULL 112	/* a lookup: every field */

/* Key of weir_policy_v1. 20 bytes. Fields are matched in this order. */
struct policy_key {
	__u32 prefixlen;	/* host byte order: significant bits after this field */
	__u32 ifindex;		/* the endpoint's host veth, host byte order; always matched */
	__u32 identity;		/* remote identity, host byte order; 0 = any; always matched */
	__u8 slot;		/* 0 or 1; always matched */
	__u8 direction;		/* enum weir_direction; always matched */
	__u8 protocol;		/* IANA number; wildcarded by WEIR_POLICY_PREFIX_ANY_PROTO */
	__u8 pad;		/* always 0; matched only by port entries */
	__be16 dport;		/* network byte order; wildcarded in part (ranges) or whole */
	__u8 pad2[2];		/* always 0; never matched */
};

/* Value of weir_policy_v1. 16 bytes; pad always zero. */
struct policy_value {
	__u64 cookie;		/* names the policy rule that made the entry (user space's table) */
	__u8 verdict;		/* enum weir_verdict */
	__u8 pad[7];
};

/* ep_policy.flags */
#define WEIR_EPP_F_INGRESS_ENFORCED 1	/* a policy isolates the endpoint's ingress */
#define WEIR_EPP_F_EGRESS_ENFORCED 2	/* ... its egress */
#define WEIR_EPP_F_IPBLOCK_PODS 4	/* ipBlock rules match pod addresses too (upstream) */

/* Value of weir_ep_policy_v1 (key: struct endpoint_key). 24 bytes; pad always zero. */
struct ep_policy {
	__u64 ingress_cookie;	/* default cookie of ingress: the policy that isolated it */
	__u64 egress_cookie;	/* ... of egress */
	__u32 identity;		/* the endpoint's own identity, host byte order */
	__u8 flags;		/* WEIR_EPP_F_* */
	__u8 slot;		/* the active slot of the endpoint's weir_policy_v1 entries */
	__u8 pad[2];
};

BPF_TABLE_PINNED("lpm_trie", struct policy_key, struct policy_value, weir_policy_v1,
		 WEIR_MAX_POLICY, WEIR_PIN_DIR "/weir_policy_v1", BPF_F_NO_PREALLOC);

/* Not preallocated: a replaced value is freed after an RCU grace period, never reused under a
 * program still reading it. */
BPF_TABLE_PINNED("hash", struct endpoint_key, struct ep_policy, weir_ep_policy_v1,
		 WEIR_MAX_ENDPOINTS, WEIR_PIN_DIR "/weir_ep_policy_v1", BPF_F_NO_PREALLOC);

/* The endpoint's policy config (a copy); 0 when it has none (no policy written yet). */
static __always_inline int ep_policy_of(__u32 ifindex, struct ep_policy *out)
{
	struct endpoint_key key = { .ifindex = ifindex };
	struct ep_policy *cfg;

	cfg = weir_ep_policy_v1.lookup(&key);
	if (!cfg)
		return 0;
	*out = *cfg;
	return 1;
}

static __always_inline int policy_enforced(const struct ep_policy *cfg, __u8 dir)
{
	__u8 flag = dir == WEIR_DIR_FROM_POD ? WEIR_EPP_F_EGRESS_ENFORCED : WEIR_EPP_F_INGRESS_ENFORCED;

	return (cfg->flags & flag) != 0;
}

/* The outcome of meeting policy. */
struct policy_verdict {
	__u64 cookie;
	__u8 verdict;		/* WEIR_VERDICT_ALLOW or WEIR_VERDICT_DENY */
	__u8 reason;		/* enum weir_reason */
	__u8 pad[6];
};

/* Fold one lookup result into `v`: a DENY wins, the first ALLOW is kept. */
static __always_inline void policy_fold(struct policy_verdict *v, struct policy_value *e)
{
	if (!e)
		return;
	if (e->verdict == WEIR_VERDICT_DENY && v->verdict != WEIR_VERDICT_DENY) {
		v->verdict = WEIR_VERDICT_DENY;
		v->reason = WEIR_REASON_POLICY_DENY_RULE;
		v->cookie = e->cookie;
	} else if (e->verdict == WEIR_VERDICT_ALLOW && v->verdict == WEIR_VERDICT_NONE) {
		v->verdict = WEIR_VERDICT_ALLOW;
		v->reason = WEIR_REASON_POLICY_ALLOW;
		v->cookie = e->cookie;
	}
}

/* The verdict for a new flow of the endpoint `ifindex` in direction `dir` with the remote
 * identity `remote` (and its CIDR identity `remote_cidr`, 0 when not to be looked up). */
static __always_inline void policy_decide(const struct ep_policy *cfg, __u32 ifindex, __u8 dir,
					  __u32 remote, __u32 remote_cidr, __u8 protocol,
					  __be16 dport, struct policy_verdict *v)
{
	struct policy_key key = {
		.prefixlen = WEIR_POLICY_PREFIX_FULL,
		.ifindex = ifindex,
		.identity = remote,
		.slot = cfg->slot,
		.direction = dir,
		.protocol = protocol,
		.dport = dport,
	};
	struct policy_value *e;

	v->verdict = WEIR_VERDICT_NONE;
	v->cookie = 0;
	if (!policy_enforced(cfg, dir)) {
		v->verdict = WEIR_VERDICT_ALLOW;
		v->reason = WEIR_REASON_NOT_ENFORCED;
		return;
	}
	e = weir_policy_v1.lookup(&key);
	policy_fold(v, e);
	key.identity = 0;
	e = weir_policy_v1.lookup(&key);
	policy_fold(v, e);
	if (remote_cidr && remote_cidr != remote) {
		key.identity = remote_cidr;
		e = weir_policy_v1.lookup(&key);
		policy_fold(v, e);
	}
	if (v->verdict == WEIR_VERDICT_NONE) {
		v->verdict = WEIR_VERDICT_DENY;
		v->reason = WEIR_REASON_POLICY_DENIED;
		v->cookie = dir == WEIR_DIR_FROM_POD ? cfg->egress_cookie : cfg->ingress_cookie;
	}
}

#endif /* WEIR_POLICY_H */
