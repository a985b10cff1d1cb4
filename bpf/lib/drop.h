/* drop.h — counting verdicts per reason, and the one way a packet is dropped.
 *
 * weir_reason_stats_v1 counts packets and bytes per (reason, direction): every pass of the
 * policy path and every drop. Its index is reason << 2 | direction, so user space reads it as a
 * table keyed by the two enums it shares with this code (maps.Reason, maps.Direction).
 *
 * Every drop goes through drop_packet(): it counts the drop under its reason and reports it as a
 * verdict event (rate-limited) with the reason and cookie, then returns TC_ACT_SHOT. Nothing else
 * in the datapath returns TC_ACT_SHOT.
 */
#ifndef WEIR_DROP_H
#define WEIR_DROP_H

#include "common.h"
#include "reasons.h"
#include "events.h"

/* A value of weir_reason_stats_v1, one per possible CPU. 16 bytes. */
struct reason_stats {
	__u64 packets;		/* segments: a GSO super-packet counts as its gso_segs */
	__u64 bytes;		/* skb->len */
};

BPF_TABLE_PINNED("percpu_array", __u32, struct reason_stats, weir_reason_stats_v1,
		 WEIR_REASON_SLOTS, WEIR_PIN_DIR "/weir_reason_stats_v1");

static __always_inline void count_reason(struct __sk_buff *skb, __u16 reason, __u8 dir)
{
	__u32 index = ((__u32)reason << 2) | (dir & 3);
	struct reason_stats *s;

	s = weir_reason_stats_v1.lookup(&index);
	if (!s)
		return;
	s->packets += skb->gso_segs ? skb->gso_segs : 1;	/* this CPU's copy */
	s->bytes += skb->len;
}

/* Drop the packet for `reason`: counted, reported, TC_ACT_SHOT. */
static __always_inline int drop_packet(struct __sk_buff *skb, const struct tuple *t, __u8 dir,
				       __u16 reason, __u64 cookie, __u32 local_identity,
				       __u32 remote_identity, __u64 now)
{
	count_reason(skb, reason, dir);
	event_send(t, skb->ifindex, dir, WEIR_VERDICT_DENY, reason, cookie, local_identity,
		   remote_identity, now);
	return TC_ACT_SHOT;
}

#endif /* WEIR_DROP_H */
