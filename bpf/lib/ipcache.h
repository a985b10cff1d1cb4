/* ipcache.h — which identity an IPv4 address has: the longest prefix wins.
 *
 * node-loader writes KV weir-ipcache here (pods' /32s, nodes, CIDRs of ipBlocks, 0.0.0.0/0 for
 * WORLD), with this node's own addresses mapped to the reserved HOST identity and every other
 * node's to REMOTE_NODE. An address no prefix covers is WORLD.
 *
 * weir_ipcache_cidr_v1 holds only the CIDR and WORLD entries. An endpoint whose policy asks for
 * upstream Kubernetes' ipBlock semantics (ipBlock matches pod addresses too) looks a pod's (or
 * node's) address up there as well, to find the CIDR identity an ipBlock rule was written for.
 */
#ifndef WEIR_IPCACHE_H
#define WEIR_IPCACHE_H

#include "common.h"

/* Reserved identities (weir.identity.Reserved). */
#define WEIR_ID_HOST 1
#define WEIR_ID_WORLD 2

/* What kind of prefix an entry is (weir.models.IPCacheKind; maps.IPCacheKind). Never renumber. */
enum weir_ipcache_kind {
	WEIR_IPCACHE_POD = 1,
	WEIR_IPCACHE_NODE = 2,	/* a node's address: this node's carry HOST, others' REMOTE_NODE */
	WEIR_IPCACHE_CIDR = 3,
	WEIR_IPCACHE_WORLD = 4,
};

/* ipcache_value.flags */
#define WEIR_IPCACHE_F_CIDR 1	/* a CIDR or WORLD entry: ipBlock rules name it directly */
#define WEIR_IPCACHE_F_LOCAL 2	/* written by node-loader itself, not from KV (user space only) */

/* Key of both LPM tries. 8 bytes: the kernel's struct bpf_lpm_trie_key layout. */
struct ipcache_key {
	__u32 prefixlen;	/* host byte order: significant bits of addr, 0-32 */
	__be32 addr;		/* network byte order (as in struct iphdr): the trie matches from
				 * its first byte, so the prefix is the address's leading bits */
};

/* Value of both LPM tries. 8 bytes, no padding beyond the explicit pad (always zero). */
struct ipcache_value {
	__u32 identity;		/* host byte order */
	__u8 kind;		/* enum weir_ipcache_kind */
	__u8 flags;		/* WEIR_IPCACHE_F_* */
	__u8 pad[2];
};

BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct ipcache_value, weir_ipcache_v1,
		 WEIR_MAX_IPCACHE, WEIR_PIN_DIR "/weir_ipcache_v1", BPF_F_NO_PREALLOC);

BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct ipcache_value, weir_ipcache_cidr_v1,
		 WEIR_MAX_IPCACHE_CIDR, WEIR_PIN_DIR "/weir_ipcache_cidr_v1", BPF_F_NO_PREALLOC);

/* The entry covering `addr` (a copy); WORLD when no prefix covers it. */
static __always_inline struct ipcache_value ipcache_lookup(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	struct ipcache_value out = { .identity = WEIR_ID_WORLD, .kind = WEIR_IPCACHE_WORLD,
				     .flags = WEIR_IPCACHE_F_CIDR };
	struct ipcache_value *found;

	found = weir_ipcache_v1.lookup(&key);
	if (found)
		out = *found;
	return out;
}

/* The CIDR identity of `addr` (its CIDR or WORLD entry); WORLD when none covers it. */
static __always_inline __u32 ipcache_cidr_identity(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	struct ipcache_value *found;

	found = weir_ipcache_cidr_v1.lookup(&key);
	return found ? found->identity : WEIR_ID_WORLD;
}

#endif /* WEIR_IPCACHE_H */
