/* lxc.c — the programs on a pod's host-side veth, in the node's network namespace.
 *
 * node-loader compiles this file once at start (BCC) and attaches its two programs to every pod
 * veth with tc (clsact, direct-action; filter prio 1, handle 1). The entry points only dispatch;
 * what they do lives in bpf/lib, one header per concern, and in policy_path() below:
 *
 *   count the packet (accounting.h) -> parse its IPv4 flow (packet.h)
 *   -> part of an allowed flow? pass (conntrack.h: one lookup established, two for a reply)
 *   -> else a new flow meets the endpoint's policy: remote identity (ipcache.h), verdict
 *      (policy.h); allowed: conntrack entry, pass; denied: drop_packet() (drop.h)
 *   -> every verdict counted per reason (drop.h); allowed new flows and drops reported (events.h)
 *
 * Non-IPv4 frames (ARP) pass. A packet that passes returns TC_ACT_OK: the node's network
 * namespace routes it.
 */
#include "lib/common.h"
#include "lib/reasons.h"
#include "lib/endpoints.h"
#include "lib/accounting.h"
#include "lib/packet.h"
#include "lib/ipcache.h"
#include "lib/policy.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/drop.h"

/* A packet that passes: counted under its reason; a first fragment lends its ports on. */
static __always_inline int pass_packet(struct __sk_buff *skb, const struct tuple *t, __u8 dir,
				       __u16 reason)
{
	count_reason(skb, reason, dir);
	if (t->flags & WEIR_TUPLE_F_FIRST_FRAG)
		frag_remember((struct tuple *)t);
	return TC_ACT_OK;
}

/* The policy path of one packet of a registered endpoint, in direction `dir`. */
static __always_inline int policy_path(struct __sk_buff *skb, __u8 dir)
{
	struct tuple t = {};
	struct tuple rel = {};
	struct ep_policy cfg = {};
	struct ipcache_value remote;
	struct policy_verdict v = {};
	__u64 now = bpf_ktime_get_ns();
	__u32 remote_cidr = 0;
	__be16 policy_port;
	__be32 remote_addr;
	__u16 reason;
	int ct;

	switch (parse_packet(skb, &t, &rel)) {
	case WEIR_PARSE_NOT_IPV4:
		return TC_ACT_OK;
	case WEIR_PARSE_MALFORMED:
		return drop_packet(skb, &t, dir, WEIR_REASON_MALFORMED, 0, 0, 0, now);
	}
	if (t.flags & WEIR_TUPLE_F_LATER_FRAG)
		frag_ports_of(&t);	/* unknown: stays untracked, with ports 0 */

	/* Part of a flow already allowed? */
	if ((rel.flags & WEIR_TUPLE_F_RELATED) && ct_lookup(&rel, dir, now) != WEIR_CT_NEW)
		return pass_packet(skb, &t, dir, WEIR_REASON_CT_RELATED);
	if (t.flags & WEIR_TUPLE_F_TRACKED) {
		ct = ct_lookup(&t, dir, now);
		if (ct == WEIR_CT_ESTABLISHED)
			return pass_packet(skb, &t, dir, WEIR_REASON_CT_ESTABLISHED);
		if (ct == WEIR_CT_REPLY)
			return pass_packet(skb, &t, dir, WEIR_REASON_CT_REPLY);
	}

	/* A new flow. An endpoint with no policy written is not policed (and not tracked). */
	if (!ep_policy_of(skb->ifindex, &cfg))
		return pass_packet(skb, &t, dir, WEIR_REASON_NOT_ENFORCED);
	remote_addr = dir == WEIR_DIR_FROM_POD ? t.daddr : t.saddr;
	remote = ipcache_lookup(remote_addr);
	if ((cfg.flags & WEIR_EPP_F_IPBLOCK_PODS) && !(remote.flags & WEIR_IPCACHE_F_CIDR) &&
	    policy_enforced(&cfg, dir))
		remote_cidr = ipcache_cidr_identity(remote_addr);
	/* ICMP has no ports for policy; an echo's identifier is conntrack's business only. */
	policy_port = t.protocol == WEIR_IPPROTO_ICMP ? 0 : t.dport;
	policy_decide(&cfg, skb->ifindex, dir, remote.identity, remote_cidr, t.protocol,
		      policy_port, &v);
	if (v.verdict != WEIR_VERDICT_ALLOW) {
		reason = v.reason;
		if ((t.flags & WEIR_TUPLE_F_LATER_FRAG) && !(t.flags & WEIR_TUPLE_F_TRACKED))
			reason = WEIR_REASON_FRAGMENT_UNKNOWN;
		return drop_packet(skb, &t, dir, reason, v.cookie, cfg.identity, remote.identity,
				   now);
	}
	if (t.flags & WEIR_TUPLE_F_TRACKED)
		ct_create(&t, dir, now, v.cookie, remote.identity);
	if (v.reason == WEIR_REASON_POLICY_ALLOW ||
	    (settings_get().flags & WEIR_SETTINGS_F_EVENTS_UNENFORCED))
		event_send(&t, skb->ifindex, dir, WEIR_VERDICT_ALLOW, v.reason, v.cookie,
			   cfg.identity, remote.identity, now);
	return pass_packet(skb, &t, dir, v.reason);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_info *ep = lookup_endpoint(skb->ifindex);

	if (!ep)
		return TC_ACT_OK;	/* not an endpoint (or one being removed) */
	account(skb, dir);
	return policy_path(skb, dir);
}

/* Hook: tc ingress of the host-side veth. Direction: packets leaving the pod (its egress). */
int weir_from_pod(struct __sk_buff *skb)
{
	return handle(skb, WEIR_DIR_FROM_POD);
}

/* Hook: tc egress of the host-side veth. Direction: packets entering the pod (its ingress). */
int weir_to_pod(struct __sk_buff *skb)
{
	return handle(skb, WEIR_DIR_TO_POD);
}
