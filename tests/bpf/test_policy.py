"""lxc.c's policy path on crafted packets: build packet -> seed maps -> run -> assert verdict,
event and map side effects, one scenario per test.

The endpoint under test (10.244.1.2, identity 1000) sits on lo; "from" packets leave it (its
egress, tc ingress of its veth), "to" packets enter it (its ingress).
"""

from __future__ import annotations

from weir.identity import Reserved
from weir_node_loader import maps
from weir_node_loader.maps import CtFlag, Reason

from tests.bpf import packets
from tests.bpf.datapath import (
    FROM,
    LO,
    POD_ID,
    POD_IP,
    SCTP,
    TC_ACT_OK,
    TC_ACT_SHOT,
    TCP,
    TO,
    UDP,
    Datapath,
    allow,
    cidr,
    deny,
    endpoint_policy,
    pod,
    world,
)

PEER_IP = "10.244.1.3"
PEER_ID = 2000
OTHER_IP = "10.244.2.7"
OTHER_ID = 2001


def peers(d: Datapath) -> None:
    d.ipcache(pod(f"{PEER_IP}/32", PEER_ID, "peer"), pod(f"{OTHER_IP}/32", OTHER_ID, "other"))


# --- allow and deny ---------------------------------------------------------------------------


def test_an_allowed_new_flow_passes_is_tracked_and_reported(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(egress=[allow(PEER_ID, TCP, 80, cookie=11)], egress_cookie=9))
    syn = packets.tcp(POD_IP, PEER_IP, 40000, 80)
    assert datapath.run(FROM, syn) == TC_ACT_OK
    [ev] = datapath.events()
    assert (ev.verdict, ev.reason, ev.cookie) == (maps.Verdict.ALLOW, Reason.POLICY_ALLOW, 11)
    assert (ev.src_ip, ev.dst_ip, ev.src_port, ev.dst_port) == (POD_IP, PEER_IP, 40000, 80)
    assert (ev.ifindex, ev.direction, ev.protocol) == (LO, FROM, TCP)
    assert (ev.local_identity, ev.remote_identity) == (POD_ID, PEER_ID)
    [entry] = datapath.ct()
    assert (entry.saddr, entry.daddr, entry.sport, entry.dport) == (POD_IP, PEER_IP, 40000, 80)
    assert entry.direction == FROM and entry.flags == CtFlag.SYN and entry.cookie == 11
    assert datapath.counted(Reason.POLICY_ALLOW, FROM) == 1


def test_a_flow_no_entry_allows_is_dropped_with_the_default_cookie(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(egress=[allow(PEER_ID, TCP, 80)], egress_cookie=9))
    assert datapath.run(FROM, packets.tcp(POD_IP, PEER_IP, 40000, 443)) == TC_ACT_SHOT
    assert datapath.run(FROM, packets.tcp(POD_IP, OTHER_IP, 40001, 80)) == TC_ACT_SHOT
    evs = datapath.events()
    assert [(e.verdict, e.reason, e.cookie, e.dst_ip) for e in evs] == [
        (maps.Verdict.DENY, Reason.POLICY_DENIED, 9, PEER_IP),
        (maps.Verdict.DENY, Reason.POLICY_DENIED, 9, OTHER_IP),
    ]
    assert datapath.ct() == []
    assert datapath.counted(Reason.POLICY_DENIED, FROM) == 2


def test_ingress_meets_the_ingress_policy_with_the_source_as_remote(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, TCP, 8080)], ingress_cookie=5))
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50000, 8080)) == TC_ACT_OK
    assert datapath.run(TO, packets.tcp(OTHER_IP, POD_IP, 50000, 8080)) == TC_ACT_SHOT
    allowed, denied = datapath.events()
    assert (allowed.remote_identity, allowed.direction) == (PEER_ID, TO)
    assert (denied.remote_identity, denied.cookie, denied.reason) == (
        OTHER_ID, 5, Reason.POLICY_DENIED
    )  # fmt: skip
    # egress is not enforced: the pod may send anything
    assert datapath.run(FROM, packets.udp(POD_IP, OTHER_IP, 5353, 53)) == TC_ACT_OK


def test_a_deny_entry_wins_over_an_allow_of_any_remote(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(
        endpoint_policy(egress=[allow(0, TCP, 0, cookie=1), deny(OTHER_ID, TCP, 0, cookie=66)])
    )
    assert datapath.run(FROM, packets.tcp(POD_IP, PEER_IP, 40000, 22)) == TC_ACT_OK
    assert datapath.run(FROM, packets.tcp(POD_IP, OTHER_IP, 40000, 22)) == TC_ACT_SHOT
    denied = datapath.events()[-1]
    assert (denied.reason, denied.cookie) == (Reason.POLICY_DENY_RULE, 66)


# --- conntrack --------------------------------------------------------------------------------


def test_a_reply_passes_where_a_new_flow_the_other_way_is_denied(datapath: Datapath) -> None:
    peers(datapath)
    # The pod may connect out to PEER:80; nothing may connect in.
    datapath.policy(endpoint_policy(ingress=[], egress=[allow(PEER_ID, TCP, 80)]))
    assert datapath.run(FROM, packets.tcp(POD_IP, PEER_IP, 40000, 80)) == TC_ACT_OK
    synack = packets.tcp(PEER_IP, POD_IP, 80, 40000, packets.TCP_SYN | packets.TCP_ACK)
    assert datapath.run(TO, synack) == TC_ACT_OK
    assert datapath.counted(Reason.CT_REPLY, TO) == 1
    # The same peer opening its own connection in is a new flow: ingress denies it.
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 80, 40001)) == TC_ACT_SHOT
    # The forward direction keeps passing as established, and the entry saw the reply.
    ack = packets.tcp(POD_IP, PEER_IP, 40000, 80, packets.TCP_ACK)
    assert datapath.run(FROM, ack) == TC_ACT_OK
    assert datapath.counted(Reason.CT_ESTABLISHED, FROM) == 1
    [entry] = datapath.ct()
    assert entry.flags == CtFlag.SYN | CtFlag.REPLIED


def test_an_established_flow_survives_a_policy_change_that_denies_new_ones(
    datapath: Datapath,
) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, TCP, 80, cookie=1)]))
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50000, 80)) == TC_ACT_OK
    flip = datapath.policy(endpoint_policy(ingress=[], ingress_cookie=2))  # now: deny all
    assert flip is not None and flip.slot == 1
    data = packets.tcp(PEER_IP, POD_IP, 50000, 80, packets.TCP_ACK, b"more")
    assert datapath.run(TO, data) == TC_ACT_OK
    reply = packets.tcp(POD_IP, PEER_IP, 80, 50000, packets.TCP_ACK, b"ok")
    assert datapath.run(FROM, reply) == TC_ACT_OK
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50001, 80)) == TC_ACT_SHOT
    assert datapath.events()[-1].cookie == 2


def test_a_mid_stream_tcp_packet_with_no_entry_meets_policy(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[]))
    ack = packets.tcp(PEER_IP, POD_IP, 50000, 80, packets.TCP_ACK, b"x")
    assert datapath.run(TO, ack) == TC_ACT_SHOT


def test_a_syn_on_a_closed_connection_meets_policy_again(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, TCP, 80)]))
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50000, 80)) == TC_ACT_OK
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50000, 80, packets.TCP_RST)) == TC_ACT_OK
    [entry] = datapath.ct()
    assert entry.flags & CtFlag.RST
    datapath.policy(endpoint_policy(ingress=[]))
    # The same 4-tuple reused by a new connection is a new flow, which policy now denies.
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 50000, 80)) == TC_ACT_SHOT


def test_udp_and_ping_replies_pass_through_conntrack(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[], egress=[allow(PEER_ID)]))  # any protocol
    assert datapath.run(FROM, packets.udp(POD_IP, PEER_IP, 5000, 53)) == TC_ACT_OK
    assert datapath.run(TO, packets.udp(PEER_IP, POD_IP, 53, 5000)) == TC_ACT_OK
    assert datapath.run(TO, packets.udp(PEER_IP, POD_IP, 53, 5001)) == TC_ACT_SHOT
    assert datapath.run(FROM, packets.icmp(POD_IP, PEER_IP, 8, ident=99)) == TC_ACT_OK
    assert datapath.run(TO, packets.icmp(PEER_IP, POD_IP, 0, ident=99)) == TC_ACT_OK
    assert datapath.run(TO, packets.icmp(PEER_IP, POD_IP, 0, ident=98)) == TC_ACT_SHOT
    assert datapath.run(TO, packets.icmp(PEER_IP, POD_IP, 8, ident=99)) == TC_ACT_SHOT
    assert datapath.counted(Reason.CT_REPLY, TO) == 2


def test_an_icmp_error_about_a_tracked_flow_is_related(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[], egress=[allow(PEER_ID, UDP, 53)]))
    sent = packets.udp(POD_IP, PEER_IP, 5000, 53)
    assert datapath.run(FROM, sent) == TC_ACT_OK
    unreachable = packets.icmp_error(PEER_IP, POD_IP, packets.ip_of(sent)[:28])
    assert datapath.run(TO, unreachable) == TC_ACT_OK
    assert datapath.counted(Reason.CT_RELATED, TO) == 1
    other = packets.icmp_error(
        PEER_IP, POD_IP, packets.ip_of(packets.udp(POD_IP, PEER_IP, 5001, 53))[:28]
    )
    assert datapath.run(TO, other) == TC_ACT_SHOT


def test_later_fragments_follow_their_first_and_strays_are_dropped(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, UDP, 9000)]))
    udp_header = bytes.fromhex("1f40 2328 0410 0000")  # 8000 -> 9000
    first = packets.ethernet(packets.ipv4_frag(PEER_IP, POD_IP, UDP, udp_header + bytes(16),
                                               ident=77, more=True))  # fmt: skip
    later = packets.ethernet(packets.ipv4_frag(PEER_IP, POD_IP, UDP, bytes(64), ident=77,
                                               offset=3))  # fmt: skip
    stray = packets.ethernet(packets.ipv4_frag(PEER_IP, POD_IP, UDP, bytes(64), ident=78,
                                               offset=3))  # fmt: skip
    assert datapath.run(TO, first) == TC_ACT_OK
    assert datapath.run(TO, later) == TC_ACT_OK
    assert datapath.counted(Reason.CT_ESTABLISHED, TO) == 1
    assert datapath.run(TO, stray) == TC_ACT_SHOT
    assert datapath.events()[-1].reason == Reason.FRAGMENT_UNKNOWN


# --- identities, ipBlocks, ports, protocols ---------------------------------------------------


def test_ipblock_except_and_ipblock_matching_pods(datapath: Datapath) -> None:
    block, hole, pods = (1 << 24) | 1, (1 << 24) | 2, (1 << 24) | 3
    datapath.ipcache(
        world(),
        cidr("10.0.0.0/8", block),
        cidr("10.1.0.0/16", hole),  # the ipBlock's except: its own identity, no entry
        cidr("10.244.0.0/16", pods),
        pod(f"{PEER_IP}/32", PEER_ID),
    )
    rules = [allow(block, cookie=1), allow(pods, cookie=2)]
    datapath.policy(endpoint_policy(egress=rules, ipblock_matches_pods=True))
    assert datapath.run(FROM, packets.udp(POD_IP, "10.2.3.4", 1, 53)) == TC_ACT_OK
    assert datapath.run(FROM, packets.udp(POD_IP, "10.1.2.3", 1, 53)) == TC_ACT_SHOT
    assert datapath.run(FROM, packets.udp(POD_IP, "192.168.1.1", 1, 53)) == TC_ACT_SHOT
    # A pod inside the block: upstream semantics allow it through the CIDR's identity...
    assert datapath.run(FROM, packets.udp(POD_IP, PEER_IP, 1, 53)) == TC_ACT_OK
    assert datapath.events()[-1].cookie == 2
    # ...Cilium's do not (ipblock_matches_pods false: only the pod's own identity counts).
    datapath.policy(endpoint_policy(egress=rules, ipblock_matches_pods=False))
    assert datapath.run(FROM, packets.udp(POD_IP, PEER_IP, 2, 53)) == TC_ACT_SHOT


def test_port_ranges_end_exactly_at_their_bounds(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, TCP, 8000, end_port=8080)]))
    verdicts = {
        port: datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 40000 + port, port))
        for port in (7999, 8000, 8001, 8063, 8064, 8079, 8080, 8081, 9000)
    }
    allowed = {port for port, rv in verdicts.items() if rv == TC_ACT_OK}
    assert allowed == {8000, 8001, 8063, 8064, 8079, 8080}


def test_an_unknown_remote_is_world(datapath: Datapath) -> None:
    datapath.policy(endpoint_policy(egress=[allow(Reserved.WORLD, TCP, 443)]))
    assert datapath.run(FROM, packets.tcp(POD_IP, "93.184.216.34", 40000, 443)) == TC_ACT_OK
    assert datapath.events()[-1].remote_identity == Reserved.WORLD
    datapath.ipcache(world())  # the same with KV's 0.0.0.0/0 entry
    assert datapath.run(FROM, packets.tcp(POD_IP, "93.184.216.35", 40000, 443)) == TC_ACT_OK


def test_any_remote_and_any_port_and_any_protocol_entries(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(0, TCP, 0), allow(PEER_ID, 0)]))
    assert datapath.run(TO, packets.tcp(OTHER_IP, POD_IP, 1000, 12345)) == TC_ACT_OK  # any remote
    assert datapath.run(TO, packets.udp(OTHER_IP, POD_IP, 1000, 12345)) == TC_ACT_SHOT
    assert datapath.run(TO, packets.udp(PEER_IP, POD_IP, 1000, 12345)) == TC_ACT_OK  # any proto
    assert datapath.run(TO, packets.icmp(PEER_IP, POD_IP, 8)) == TC_ACT_OK
    assert datapath.run(TO, packets.icmp(OTHER_IP, POD_IP, 8)) == TC_ACT_SHOT


def test_an_sctp_entry_does_not_open_tcp(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[allow(PEER_ID, SCTP, 80)]))
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1000, 80)) == TC_ACT_SHOT
    assert datapath.run(TO, packets.udp(PEER_IP, POD_IP, 1000, 80)) == TC_ACT_SHOT
    assert datapath.run(TO, packets.sctp(PEER_IP, POD_IP, 1000, 80)) == TC_ACT_OK


def test_host_traffic_follows_policy_entries(datapath: Datapath) -> None:
    datapath.ipcache(pod(f"{PEER_IP}/32", PEER_ID), host=["169.254.1.1"])
    datapath.policy(endpoint_policy(ingress=[allow(Reserved.HOST)]))
    assert datapath.run(TO, packets.tcp("169.254.1.1", POD_IP, 1000, 8080)) == TC_ACT_OK
    assert datapath.events()[-1].remote_identity == Reserved.HOST
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1000, 8080)) == TC_ACT_SHOT


# --- slots, endpoints without policy, what always passes ----------------------------------------


def test_only_the_active_slot_is_read(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[]))  # slot 0: deny all
    syn = packets.tcp(PEER_IP, POD_IP, 1000, 80)
    # Fill slot 1 by hand, as a flip does, without switching the config yet.
    from weir_node_loader import policy as pol

    compiled = pol.compile_policy(endpoint_policy(ingress=[allow(PEER_ID, TCP, 80)]))
    flip = pol.plan(compiled, datapath.dp.policies()[LO])
    assert flip is not None and flip.slot == 1
    half = pol.Flip(flip.slot, flip.config, flip.put, flip.delete_first, False, ())
    datapath.dp.flip(LO, half)
    assert datapath.run(TO, syn) == TC_ACT_SHOT  # the new entries sit in the inactive slot
    datapath.dp.flip(LO, pol.Flip(flip.slot, flip.config, {}, (), True, ()))
    assert datapath.run(TO, syn) == TC_ACT_OK  # one config write switches the whole policy
    # The old slot still holds its entries until cleared, and they are ignored: write an
    # allow-everything into slot 0 and deny-all into the config's slot 1.
    datapath.policy(endpoint_policy(ingress=[]))  # back to slot 0, deny all
    assert datapath.dp.policies()[LO].slot == 0 and not datapath.dp.policies()[LO].leftovers
    stale = pol.compile_policy(endpoint_policy(ingress=[allow(0)]))
    datapath.dp.flip(LO, pol.Flip(1, stale.config, stale.rows, (), False, ()))
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1001, 80)) == TC_ACT_SHOT


def test_an_endpoint_without_policy_is_not_policed_and_not_tracked(datapath: Datapath) -> None:
    peers(datapath)
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1000, 80)) == TC_ACT_OK
    assert datapath.ct() == [] and datapath.events() == []
    assert datapath.counted(Reason.NOT_ENFORCED, TO) == 1


def test_unenforced_directions_track_and_report_only_when_asked(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[]))  # egress not enforced
    assert datapath.run(FROM, packets.tcp(POD_IP, PEER_IP, 1000, 80)) == TC_ACT_OK
    assert len(datapath.ct()) == 1 and datapath.events() == []
    datapath.settings(flags=maps.SettingsFlag.EVENTS_UNENFORCED)
    assert datapath.run(FROM, packets.tcp(POD_IP, PEER_IP, 1001, 80)) == TC_ACT_OK
    [ev] = datapath.events()
    assert (ev.verdict, ev.reason, ev.cookie) == (maps.Verdict.ALLOW, Reason.NOT_ENFORCED, 0)


def test_arp_passes_and_other_links_are_not_policed(datapath: Datapath) -> None:
    datapath.policy(endpoint_policy(ingress=[], egress=[]))
    assert datapath.run(FROM, packets.arp_request()) == TC_ACT_OK
    datapath.endpoints.remove(LO)  # lo is no endpoint any more
    assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1, 80)) == TC_ACT_OK


def test_a_truncated_header_is_dropped_as_malformed(datapath: Datapath) -> None:
    datapath.policy(endpoint_policy(ingress=[allow(0)]))
    assert datapath.run(TO, packets.truncated_tcp(PEER_IP, POD_IP)) == TC_ACT_SHOT
    assert datapath.counted(Reason.MALFORMED, TO) == 1
    assert datapath.events()[-1].reason == Reason.MALFORMED


# --- events -----------------------------------------------------------------------------------


def test_events_are_rate_limited_per_cpu_and_the_rest_counted(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[], ingress_cookie=3))
    datapath.settings(per_sec=1, burst=3)
    for port in range(10):
        assert datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1000 + port, 80)) == TC_ACT_SHOT
    assert len(datapath.events()) == 3
    counts = datapath.event_counts()
    assert counts[maps.EventCounter.SENT] == 3
    assert counts[maps.EventCounter.SUPPRESSED] == 7
    assert counts[maps.EventCounter.LOST] == 0
    assert datapath.counted(Reason.POLICY_DENIED, TO) == 10  # counters count every drop
    datapath.settings(per_sec=0)
    datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 2000, 80))
    assert datapath.events() == []


def test_a_full_ring_buffer_is_counted_as_lost(datapath: Datapath) -> None:
    peers(datapath)
    datapath.policy(endpoint_policy(ingress=[]))
    datapath.settings(per_sec=1_000_000_000, burst=1_000_000)
    per_event = 48 + 8  # record + ring buffer header
    runs = maps.EVENTS_BYTES // per_event + 100
    datapath.run(TO, packets.tcp(PEER_IP, POD_IP, 1000, 80), repeat=runs)
    counts = datapath.event_counts()
    assert counts[maps.EventCounter.LOST] >= 100
    assert counts[maps.EventCounter.SENT] + counts[maps.EventCounter.LOST] == runs


# --- cost ---------------------------------------------------------------------------------------


def test_a_new_flow_costs_the_same_with_10_or_10000_rules(datapath: Datapath) -> None:
    peers(datapath)
    frame = packets.tcp(PEER_IP, POD_IP, 1000, 80)  # denied: every run is a new flow

    def cost(rules: int) -> int:
        entries = [allow(100_000 + i, TCP, 80) for i in range(rules)]
        datapath.policy(endpoint_policy(ingress=entries))
        datapath.settings(per_sec=0)
        return min(datapath.duration(TO, frame, repeat=20000) for _ in range(3))

    few, many = cost(10), cost(10000)
    print(f"new flow, denied: {few} ns/run with 10 rules, {many} ns/run with 10000")
    assert many < 2 * few + 200
