/* reasons.h — why a packet was passed or dropped: the one table of reason codes.
 *
 * Every verdict the policy path takes carries one of these codes: in the per-reason counters
 * (weir_reason_stats_v1, drop.h), in verdict events (events.h), and from there in node-loader's
 * metrics and in every Flow on weir.flows.<node>. User space mirrors this enum once
 * (node-loader's maps.Reason, tested against this file) and names each code there.
 *
 * NEVER renumber or reuse a code: counters, logs and flows read them. Only add, below the last
 * code of its group. Codes from WEIR_REASON_FIRST_DROP on are drops; below it, passes.
 * A code must stay below WEIR_REASON_SLOTS / 4 (the counters' index is reason << 2 | direction).
 */
#ifndef WEIR_REASONS_H
#define WEIR_REASONS_H

#define WEIR_REASON_FIRST_DROP 32

enum weir_reason {
	WEIR_REASON_UNSPEC = 0,

	/* Passed. */
	WEIR_REASON_POLICY_ALLOW = 1,	/* a new flow a policy entry allows */
	WEIR_REASON_NOT_ENFORCED = 2,	/* a new flow in a direction no policy isolates */
	WEIR_REASON_CT_ESTABLISHED = 3,	/* a packet of a flow allowed in this direction */
	WEIR_REASON_CT_REPLY = 4,	/* a reply to a flow allowed the other way */
	WEIR_REASON_CT_RELATED = 5,	/* an ICMP error about a tracked flow */

	/* Dropped (from WEIR_REASON_FIRST_DROP on). */
	WEIR_REASON_POLICY_DENIED = 32,	/* isolated, and no policy entry allows it */
	WEIR_REASON_POLICY_DENY_RULE = 33, /* a policy entry denies it */
	WEIR_REASON_MALFORMED = 34,	/* IPv4 or transport header truncated or invalid */
	WEIR_REASON_FRAGMENT_UNKNOWN = 35, /* a later fragment of a datagram whose first was not seen */
};

/* The policy verdict of a packet or a policy entry. 0: none (no entry matched). */
enum weir_verdict {
	WEIR_VERDICT_NONE = 0,
	WEIR_VERDICT_ALLOW = 1,
	WEIR_VERDICT_DENY = 2,
};

#endif /* WEIR_REASONS_H */
