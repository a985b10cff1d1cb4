/* events.h — policy verdicts to user space: allowed new flows and denied packets.
 *
 * One event per verdict through a ring buffer (weir_events_v1), read by node-loader, which
 * names the endpoint, the remote and the policy behind the cookie and publishes a Flow on
 * weir.flows.<node>. Events are rate-limited per CPU by a token bucket whose rate and burst come
 * from weir_settings_v1 (written by node-loader at start; all zero: no events at all). What the
 * limit suppresses and what the full ring refuses are counted (weir_event_stats_v1), never lost
 * silently; the per-reason counters (drop.h) count every packet regardless.
 */
#ifndef WEIR_EVENTS_H
#define WEIR_EVENTS_H

#include "common.h"
#include "packet.h"

/* settings.flags */
#define WEIR_SETTINGS_F_EVENTS_UNENFORCED 1	/* report allowed new flows of directions no policy
						 * isolates too (default: only enforced ones) */

/* Value of weir_settings_v1 (an array of one; key u32 0): run-time settings of the datapath.
 * 16 bytes; pad always zero. */
struct settings {
	__u32 events_per_sec;	/* per CPU; 0: no events */
	__u32 events_burst;	/* events a CPU may send at once after a quiet spell */
	__u32 flags;		/* WEIR_SETTINGS_F_* */
	__u32 pad;
};

/* Value of weir_event_bucket_v1 (per-CPU array of one): the token bucket, in nanoseconds of
 * credit (an event costs WEIR_NSEC_PER_SEC / events_per_sec). 16 bytes. */
struct event_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

/* Indexes of weir_event_stats_v1 (per-CPU array of u64 counters). Never renumber. */
enum weir_event_counter {
	WEIR_EVENTS_SENT = 0,		/* written to the ring buffer */
	WEIR_EVENTS_SUPPRESSED = 1,	/* held back by the rate limit */
	WEIR_EVENTS_LOST = 2,		/* the ring buffer was full (ringbuf_output failed) */
};
#define WEIR_EVENTS_COUNTERS 4		/* the array's size (room to add) */

/* A value of weir_event_stats_v1. 8 bytes. */
struct event_count {
	__u64 count;
};

/* One verdict, as written to weir_events_v1. 48 bytes; pad always zero. */
struct verdict_event {
	__u64 time_ns;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 cookie;		/* the policy rule behind the verdict (0: none) */
	__be32 saddr;		/* the packet's, network byte order */
	__be32 daddr;
	__be16 sport;		/* network byte order; ICMP echo: see packet.h */
	__be16 dport;
	__u32 ifindex;		/* the endpoint's host veth */
	__u32 local_identity;	/* the endpoint's identity (0: unknown) */
	__u32 remote_identity;	/* the remote address's identity (0: unknown) */
	__u8 protocol;
	__u8 direction;		/* enum weir_direction */
	__u8 verdict;		/* enum weir_verdict */
	__u8 pad;
	__u16 reason;		/* enum weir_reason */
	__u8 pad2[2];
};

BPF_TABLE_PINNED("array", __u32, struct settings, weir_settings_v1, 1,
		 WEIR_PIN_DIR "/weir_settings_v1");
BPF_TABLE_PINNED("percpu_array", __u32, struct event_bucket, weir_event_bucket_v1, 1,
		 WEIR_PIN_DIR "/weir_event_bucket_v1");
BPF_TABLE_PINNED("percpu_array", __u32, struct event_count, weir_event_stats_v1,
		 WEIR_EVENTS_COUNTERS, WEIR_PIN_DIR "/weir_event_stats_v1");

/* BCC's BPF_RINGBUF_OUTPUT cannot pin; this is the same declaration with the pin path in the
 * section name, which BCC reads as for every other pinned table. */
struct weir_events_v1_table_t {
	int key;
	__u32 leaf;
	int (*ringbuf_output)(void *, __u64, __u64);
	void *(*ringbuf_reserve)(__u64);
	void (*ringbuf_discard)(void *, __u64);
	void (*ringbuf_submit)(void *, __u64);
	__u32 max_entries;
};
__attribute__((section("maps/ringbuf:" WEIR_PIN_DIR "/weir_events_v1")))
struct weir_events_v1_table_t weir_events_v1 = { .max_entries = WEIR_EVENTS_BYTES };

static __always_inline void event_count(__u32 which)
{
	struct event_count *c;

	c = weir_event_stats_v1.lookup(&which);
	if (c)
		c->count += 1;	/* this CPU's copy */
}

static __always_inline struct settings settings_get(void)
{
	__u32 zero = 0;
	struct settings out = {};
	struct settings *s;

	s = weir_settings_v1.lookup(&zero);
	if (s)
		out = *s;
	return out;
}

/* May this CPU send an event now? Takes a token if so. */
static __always_inline int event_allowed(const struct settings *s, __u64 now)
{
	__u32 zero = 0;
	struct event_bucket *b;
	__u64 cost, cap, credit;

	if (s->events_per_sec == 0)
		return 0;
	b = weir_event_bucket_v1.lookup(&zero);
	if (!b)
		return 0;
	cost = WEIR_NSEC_PER_SEC / s->events_per_sec;
	cap = cost * (s->events_burst ? s->events_burst : 1);
	credit = b->credit_ns + (now - b->last_ns);
	if (b->last_ns == 0 || credit > cap)
		credit = cap;	/* first use, or a quiet spell: a full bucket */
	b->last_ns = now;
	if (credit < cost) {
		b->credit_ns = credit;
		return 0;
	}
	b->credit_ns = credit - cost;
	return 1;
}

/* Report one verdict (rate-limited, counted). */
static __always_inline void event_send(const struct tuple *t, __u32 ifindex, __u8 dir,
				       __u8 verdict, __u16 reason, __u64 cookie,
				       __u32 local_identity, __u32 remote_identity, __u64 now)
{
	struct settings s = settings_get();
	struct verdict_event ev = {
		.time_ns = now,
		.cookie = cookie,
		.saddr = t->saddr,
		.daddr = t->daddr,
		.sport = t->sport,
		.dport = t->dport,
		.ifindex = ifindex,
		.local_identity = local_identity,
		.remote_identity = remote_identity,
		.protocol = t->protocol,
		.direction = dir,
		.verdict = verdict,
		.reason = reason,
	};
	int ret;

	if (!event_allowed(&s, now)) {
		event_count(WEIR_EVENTS_SUPPRESSED);
		return;
	}
	/* A statement of its own: BCC 0.26 can mis-rewrite a map call inside a condition. */
	ret = weir_events_v1.ringbuf_output(&ev, sizeof(ev), 0);
	event_count(ret < 0 ? WEIR_EVENTS_LOST : WEIR_EVENTS_SENT);
}

#endif /* WEIR_EVENTS_H */
