/* endpoints.h — the endpoint maps: which pod a host-side veth serves, and its counters.
 *
 * node-loader writes these when the CNI plugin registers a pod and removes them when it is
 * deleted; programs only read them (and add to counters that already exist). Every map is keyed
 * by the ifindex of the pod's host-side veth in the node's network namespace, the one thing a tc
 * hook on that veth knows about its packet's endpoint (skb->ifindex), because the programs are
 * compiled once per node rather than once per pod.
 *
 * Each map is pinned at WEIR_PIN_DIR/<name>; the _vN suffix is its layout version. A layout
 * change takes a new name, never an in-place edit: node-loader refuses a pin whose type, key or
 * value size or capacity differs from what it expects. The structs are mirrored once in Python
 * (node-loader's maps.py) and tested against these declarations and BCC's own ctypes types.
 */
#ifndef WEIR_ENDPOINTS_H
#define WEIR_ENDPOINTS_H

#include "common.h"

/* Traffic direction, seen from the pod. Shared with user space (maps.Direction) and used in
 * counter keys: never renumber, only add. 0 is left unused so a zeroed key matches nothing. */
enum weir_direction {
	WEIR_DIR_FROM_POD = 1,	/* tc ingress of the host veth: the pod sent the packet */
	WEIR_DIR_TO_POD = 2,	/* tc egress of the host veth: the pod is receiving it */
};

/* Key of weir_endpoints_v1 and weir_ep_meta_v1. 4 bytes, no padding. */
struct endpoint_key {
	__u32 ifindex;		/* host-side veth, host byte order (as skb->ifindex) */
};

/* Value of weir_endpoints_v1: what the datapath needs to know about the pod behind a veth.
 * 16 bytes, no padding (two 6-byte arrays after a 4-byte field keep 4-byte alignment). */
struct endpoint_info {
	__be32 ip;		/* the pod's IPv4 address, network byte order (as in struct iphdr) */
	__u8 mac[6];		/* the pod's eth0 */
	__u8 host_mac[6];	/* the host-side veth */
};

/* Key of weir_ep_stats_v1. 8 bytes; the explicit pad keeps the layout identical in C and Python
 * and must be zero, because a hash compares every byte of its key. */
struct ep_stats_key {
	__u32 ifindex;		/* host-side veth, host byte order */
	__u8 dir;		/* enum weir_direction */
	__u8 pad[3];		/* always zero */
};

/* Value of weir_ep_stats_v1, one copy per possible CPU: a CPU adds to its own copy without
 * atomics and user space sums the copies. 16 bytes, no padding. */
struct ep_stats {
	__u64 packets;		/* segments: a GSO super-packet counts as its gso_segs */
	__u64 bytes;		/* skb->len: the frame from the Ethernet header on */
};

/* Value of weir_ep_meta_v1: node-loader's own record of the endpoint (the CNI request),
 * kept next to the datapath maps so that a restarted node-loader, and `weir bpf endpoint list`,
 * can name every endpoint from the pins alone — without NATS, and with node-loader down.
 * Never read by BPF programs. NUL-terminated strings, zero-filled; 736 bytes, no padding. */
struct endpoint_meta {
	char container_id[128];	/* the CNI container (sandbox) id */
	char pod_namespace[64];
	char pod_name[256];
	char netns[256];	/* the pod's network namespace path, as CNI_NETNS gave it */
	char ifname[16];	/* the interface inside the pod (CNI_IFNAME) */
	char host_ifname[16];	/* the host-side veth */
};

BPF_TABLE_PINNED("hash", struct endpoint_key, struct endpoint_info, weir_endpoints_v1,
		 WEIR_MAX_ENDPOINTS, WEIR_PIN_DIR "/weir_endpoints_v1");

BPF_TABLE_PINNED("percpu_hash", struct ep_stats_key, struct ep_stats, weir_ep_stats_v1,
		 WEIR_MAX_EP_STATS, WEIR_PIN_DIR "/weir_ep_stats_v1");

/* Not preallocated: its values are large and it is only touched on registration. */
BPF_TABLE_PINNED("hash", struct endpoint_key, struct endpoint_meta, weir_ep_meta_v1,
		 WEIR_MAX_ENDPOINTS, WEIR_PIN_DIR "/weir_ep_meta_v1", BPF_F_NO_PREALLOC);

/* The endpoint a host-side veth serves, or NULL when none is registered on it (programs can
 * stay attached for a moment while an endpoint is being removed). */
static __always_inline struct endpoint_info *lookup_endpoint(__u32 ifindex)
{
	struct endpoint_key key = { .ifindex = ifindex };
	struct endpoint_info *ep;

	/* A statement of its own: BCC 0.26 can mis-rewrite a map call inside a condition. */
	ep = weir_endpoints_v1.lookup(&key);
	return ep;
}

#endif /* WEIR_ENDPOINTS_H */
