/* accounting.h — per-endpoint, per-direction packet and byte counters (weir_ep_stats_v1). */
#ifndef WEIR_ACCOUNTING_H
#define WEIR_ACCOUNTING_H

#include "common.h"
#include "endpoints.h"

/* Count one packet of the endpoint behind skb->ifindex in direction `dir`. The counter entries
 * are created by node-loader when it registers the endpoint, never here: a program that created
 * them could resurrect the counters of an endpoint being removed. */
static __always_inline void account(struct __sk_buff *skb, enum weir_direction dir)
{
	struct ep_stats_key key = { .ifindex = skb->ifindex, .dir = dir };
	struct ep_stats *stats;

	stats = weir_ep_stats_v1.lookup(&key);
	if (!stats)
		return;
	/* Per-CPU value: this CPU's copy, so plain adds are safe (tc programs do not migrate). */
	stats->packets += skb->gso_segs ? skb->gso_segs : 1;
	stats->bytes += skb->len;
}

#endif /* WEIR_ACCOUNTING_H */
