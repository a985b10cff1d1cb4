/* packet.h — an IPv4 packet's flow, as the policy path needs it: addresses, protocol, ports.
 *
 * Headers are copied out with bpf_skb_load_bytes rather than read in place, so a header that is
 * not in the skb's linear area is read all the same; a packet shorter than its headers claim is
 * "malformed". Ports are the flow's identity for conntrack and policy:
 *
 * - TCP, UDP, SCTP: the transport ports (network byte order);
 * - ICMP echo request: sport = identifier, dport = 0; echo reply: sport = 0, dport = identifier,
 *   so a reply's reversed tuple is its request's;
 * - other ICMP types and other protocols: ports 0. An ICMP error (destination unreachable,
 *   time exceeded, parameter problem) also yields the tuple of the packet it quotes, reversed
 *   (so it reads like a reply to that packet), flagged RELATED.
 *
 * Later fragments carry no transport header; the first fragment's ports are remembered
 * (weir_frag_v1) and lent to the rest of its datagram.
 */
#ifndef WEIR_PACKET_H
#define WEIR_PACKET_H

#include "common.h"

#define WEIR_IPPROTO_ICMP 1
#define WEIR_IPPROTO_TCP 6
#define WEIR_IPPROTO_UDP 17
#define WEIR_IPPROTO_SCTP 132

#define WEIR_ICMP_ECHOREPLY 0
#define WEIR_ICMP_DEST_UNREACH 3
#define WEIR_ICMP_ECHO 8
#define WEIR_ICMP_TIME_EXCEEDED 11
#define WEIR_ICMP_PARAMETERPROB 12

#define WEIR_TCP_FIN 0x01
#define WEIR_TCP_SYN 0x02
#define WEIR_TCP_RST 0x04
#define WEIR_TCP_ACK 0x10

#define WEIR_IP_MF 0x2000
#define WEIR_IP_OFFSET 0x1fff

/* What the parse found. */
enum weir_parse {
	WEIR_PARSE_OK = 0,
	WEIR_PARSE_NOT_IPV4 = 1,	/* ARP, IPv6, ...: not the policy path's business */
	WEIR_PARSE_MALFORMED = 2,
};

/* Tuple flags. */
#define WEIR_TUPLE_F_TRACKED 1	/* conntrack may create an entry for it (TCP, UDP, SCTP, echo) */
#define WEIR_TUPLE_F_RELATED 2	/* an ICMP error: the tuple is the quoted packet's, reversed */
#define WEIR_TUPLE_F_FIRST_FRAG 4 /* the first fragment of a fragmented datagram */
#define WEIR_TUPLE_F_LATER_FRAG 8 /* a later fragment: ports from weir_frag_v1, if known */

/* A packet's flow. Lives on the stack only; never a map key (conntrack.h makes its own). */
struct tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__be16 ip_id;		/* for fragments */
	__u8 protocol;
	__u8 tcp_flags;		/* the TCP header's flags byte (0 for other protocols) */
	__u8 flags;		/* WEIR_TUPLE_F_* */
	__u8 pad[3];
};

/* Key of weir_frag_v1: one fragmented datagram. 12 bytes; pad must be zero. */
struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 ip_id;		/* network byte order, as in the IP header */
	__u8 protocol;
	__u8 pad;
};

/* Value of weir_frag_v1: the ports of the datagram's first fragment. 4 bytes. */
struct frag_ports {
	__be16 sport;
	__be16 dport;
};

/* LRU: a datagram whose later fragments never come is simply evicted. */
BPF_TABLE_PINNED("lru_hash", struct frag_key, struct frag_ports, weir_frag_v1, WEIR_MAX_FRAG,
		 WEIR_PIN_DIR "/weir_frag_v1");

/* Transport ports of `protocol` at offset `off`, or the ICMP identity; -1 if truncated. */
static __always_inline int load_ports(struct __sk_buff *skb, __u32 off, __u8 protocol,
				      struct tuple *t, int outer)
{
	__be16 ports[2];

	switch (protocol) {
	case WEIR_IPPROTO_TCP:
	case WEIR_IPPROTO_UDP:
	case WEIR_IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
		t->flags |= WEIR_TUPLE_F_TRACKED;
		if (outer && protocol == WEIR_IPPROTO_TCP &&
		    bpf_skb_load_bytes(skb, off + 13, &t->tcp_flags, 1) < 0)
			return -1;
		return 0;
	case WEIR_IPPROTO_ICMP: {
		/* type, code, checksum, identifier, sequence */
		__u8 head[8];

		if (bpf_skb_load_bytes(skb, off, head, sizeof(head)) < 0)
			return -1;
		if (head[0] == WEIR_ICMP_ECHO) {
			t->sport = *(__be16 *)&head[4];
			t->dport = 0;
			t->flags |= WEIR_TUPLE_F_TRACKED;
		} else if (head[0] == WEIR_ICMP_ECHOREPLY) {
			t->sport = 0;
			t->dport = *(__be16 *)&head[4];
			t->flags |= WEIR_TUPLE_F_TRACKED;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* An ICMP error (destination unreachable, time exceeded, parameter problem) quotes the packet
 * it is about: fill `rel` with that packet's tuple, reversed, and flag it RELATED. A quote that
 * cannot be read leaves `rel` empty, and the packet a plain untracked ICMP one. */
static __always_inline void load_related(struct __sk_buff *skb, __u32 off, struct tuple *rel)
{
	struct iphdr inner;
	struct tuple q = {};
	__u8 type;

	if (bpf_skb_load_bytes(skb, off, &type, 1) < 0)
		return;
	if (type != WEIR_ICMP_DEST_UNREACH && type != WEIR_ICMP_TIME_EXCEEDED &&
	    type != WEIR_ICMP_PARAMETERPROB)
		return;
	if (bpf_skb_load_bytes(skb, off + 8, &inner, sizeof(inner)) < 0 || inner.ihl < 5)
		return;
	if (load_ports(skb, off + 8 + inner.ihl * 4, inner.protocol, &q, 0) < 0 ||
	    !(q.flags & WEIR_TUPLE_F_TRACKED))
		return;
	rel->saddr = inner.daddr;
	rel->daddr = inner.saddr;
	rel->sport = q.dport;
	rel->dport = q.sport;
	rel->protocol = inner.protocol;
	rel->flags = WEIR_TUPLE_F_RELATED;
}

/* Fill `t` from the packet in `skb` (Ethernet first), and `rel` for an ICMP error. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct tuple *t, struct tuple *rel)
{
	struct iphdr ip;
	__u16 frag;
	__u32 off;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return WEIR_PARSE_NOT_IPV4;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return WEIR_PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return WEIR_PARSE_MALFORMED;
	t->saddr = ip.saddr;
	t->daddr = ip.daddr;
	t->protocol = ip.protocol;
	t->ip_id = ip.id;
	off = ETH_HLEN + ip.ihl * 4;
	frag = bpf_ntohs(ip.frag_off);
	if (frag & WEIR_IP_OFFSET) {
		t->flags |= WEIR_TUPLE_F_LATER_FRAG;
		return WEIR_PARSE_OK;
	}
	if (frag & WEIR_IP_MF)
		t->flags |= WEIR_TUPLE_F_FIRST_FRAG;
	if (load_ports(skb, off, ip.protocol, t, 1) < 0)
		return WEIR_PARSE_MALFORMED;
	if (ip.protocol == WEIR_IPPROTO_ICMP && !(t->flags & WEIR_TUPLE_F_TRACKED))
		load_related(skb, off, rel);
	return WEIR_PARSE_OK;
}

/* Later fragments: borrow the first fragment's ports. 0, or -1 when it was never seen. */
static __always_inline int frag_ports_of(struct tuple *t)
{
	struct frag_key key = { .saddr = t->saddr, .daddr = t->daddr, .ip_id = t->ip_id,
				.protocol = t->protocol };
	struct frag_ports *ports;

	ports = weir_frag_v1.lookup(&key);
	if (!ports)
		return -1;
	t->sport = ports->sport;
	t->dport = ports->dport;
	t->flags |= WEIR_TUPLE_F_TRACKED;
	return 0;
}

/* A first fragment that passed: remember its ports for the rest of the datagram. */
static __always_inline void frag_remember(struct tuple *t)
{
	struct frag_key key = { .saddr = t->saddr, .daddr = t->daddr, .ip_id = t->ip_id,
				.protocol = t->protocol };
	struct frag_ports ports = { .sport = t->sport, .dport = t->dport };

	weir_frag_v1.update(&key, &ports);
}

#endif /* WEIR_PACKET_H */
