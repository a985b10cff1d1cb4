"""flows.py: a verdict event named — pods, identities, the policy behind the cookie."""

from __future__ import annotations

import socket

import pytest
from weir.models import (
    DirectionPolicy,
    EndpointPolicy,
    FlowDirection,
    IPCacheEntry,
    IPCacheKind,
    Verdict,
)
from weir_node_loader import flows, maps
from weir_node_loader.maps import Direction, Reason, VerdictEvent

from tests.unit.node_loader.fakes import record


def raw_event(**over: int) -> bytes:
    ev = VerdictEvent(
        time_ns=5_000,
        cookie=42,
        saddr=maps.ip_to_be32("10.244.2.9"),
        daddr=maps.ip_to_be32("10.244.1.2"),
        sport=socket.htons(40000),
        dport=socket.htons(80),
        ifindex=10,
        local_identity=1000,
        remote_identity=2000,
        protocol=6,
        direction=Direction.TO_POD,
        verdict=maps.Verdict.DENY,
        reason=Reason.POLICY_DENIED,
    )
    for k, v in over.items():
        setattr(ev, k, v)
    return bytes(ev)


def policy_with(cookies: dict[int, str]) -> EndpointPolicy:
    return EndpointPolicy(
        node="node-1", pod_namespace="default", pod_name="pod-c1", pod_uid="u", identity=1000,
        ingress=DirectionPolicy(enforced=True), egress=DirectionPolicy(), cookies=cookies,
    )  # fmt: skip


REMOTE = IPCacheEntry(
    prefix="10.244.2.9/32", identity=2000, kind=IPCacheKind.POD, pod_namespace="y",
    pod_name="b", node="node-2",
)  # fmt: skip


def test_a_denied_ingress_packet_is_named_end_to_end() -> None:
    flow = flows.name_flow(
        flows.Event.decode(raw_event()),
        node="node-1",
        realtime_offset_ns=1_000_000,
        endpoint=record(ifindex=10),
        policy=policy_with({42: "default/deny-all: isolates ingress"}),
        remote=REMOTE,
        cookie_names={},
    )
    assert flow.direction == FlowDirection.INGRESS and flow.verdict == Verdict.DENY
    assert flow.reason == "policy-denied" and flow.time_ns == 1_005_000
    assert (flow.src_ip, flow.src_port, flow.dst_ip, flow.dst_port) == (
        "10.244.2.9", 40000, "10.244.1.2", 80
    )  # fmt: skip
    assert (flow.local_pod, flow.remote_pod) == ("default/pod-c1", "y/b")
    assert (flow.local_identity, flow.remote_identity, flow.cookie) == (1000, 2000, 42)
    assert flow.policy == "default/deny-all: isolates ingress"


def test_the_remote_of_an_egress_event_is_its_destination() -> None:
    event = flows.Event.decode(raw_event(direction=Direction.FROM_POD, verdict=maps.Verdict.ALLOW,
                                         reason=Reason.POLICY_ALLOW))  # fmt: skip
    assert event.remote_ip == "10.244.1.2"
    flow = flows.name_flow(
        event, node="n", realtime_offset_ns=0, endpoint=None, policy=None,
        remote=IPCacheEntry(prefix="10.0.0.0/8", identity=5, kind=IPCacheKind.CIDR),
        cookie_names={42: "x/old-policy: egress rule 1"},
    )  # fmt: skip
    assert flow.direction == FlowDirection.EGRESS and flow.verdict == Verdict.ALLOW
    assert flow.reason == "policy"
    assert flow.local_pod == "" and flow.remote_pod == ""  # unknown endpoint; not a pod
    assert flow.policy == "x/old-policy: egress rule 1"  # a cookie the policy no longer has


def test_unknown_codes_and_cookies_stay_visible_not_guessed() -> None:
    flow = flows.name_flow(
        flows.Event.decode(raw_event(reason=99, cookie=7)), node="n", realtime_offset_ns=0,
        endpoint=None, policy=policy_with({}), remote=None, cookie_names={},
    )  # fmt: skip
    assert flow.reason == "reason-99" and flow.policy == "" and flow.cookie == 7


def test_a_short_record_is_refused() -> None:
    with pytest.raises(ValueError):
        flows.Event.decode(b"\0" * 10)
