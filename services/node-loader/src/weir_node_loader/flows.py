"""Verdict events named: from the datapath's numbers to a `weir.models.Flow`. No I/O.

A verdict event (bpf/lib/events.h) knows an ifindex, two addresses, identities and a cookie.
node-loader knows what they stand for: the ifindex is an endpoint (its pod), the remote address
falls in an ipcache prefix (a pod's, a node's, a CIDR's), and the cookie is a key of the
endpoint's EndpointPolicy.cookies — the text policy-compiler wrote for the rule ("ns/policy:
rule"). Whatever cannot be named stays empty rather than guessed.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from weir.models import (
    EndpointPolicy,
    EndpointRecord,
    Flow,
    FlowDirection,
    IPCacheEntry,
    IPCacheKind,
    Verdict,
)

from weir_node_loader import maps
from weir_node_loader.maps import Direction, VerdictEvent


@dataclass(frozen=True, slots=True)
class Event:
    """A verdict event decoded from its ring buffer record (host byte order throughout)."""

    time_ns: int  # CLOCK_MONOTONIC
    cookie: int
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    ifindex: int
    local_identity: int
    remote_identity: int
    protocol: int
    direction: int  # maps.Direction
    verdict: int  # maps.Verdict
    reason: int  # maps.Reason

    @classmethod
    def decode(cls, raw: bytes) -> Event:
        """ValueError when `raw` is not one struct verdict_event."""
        if len(raw) < len(bytes(VerdictEvent())):
            raise ValueError(
                f"a verdict event is {len(bytes(VerdictEvent()))} bytes, got {len(raw)}"
            )
        ev = VerdictEvent.from_buffer_copy(raw)
        return cls(
            time_ns=ev.time_ns,
            cookie=ev.cookie,
            src_ip=maps.be32_to_ip(ev.saddr),
            dst_ip=maps.be32_to_ip(ev.daddr),
            src_port=socket.ntohs(ev.sport),
            dst_port=socket.ntohs(ev.dport),
            ifindex=ev.ifindex,
            local_identity=ev.local_identity,
            remote_identity=ev.remote_identity,
            protocol=ev.protocol,
            direction=ev.direction,
            verdict=ev.verdict,
            reason=ev.reason,
        )

    @property
    def remote_ip(self) -> str:
        return self.dst_ip if self.direction == Direction.FROM_POD else self.src_ip


def reason_label(code: int) -> str:
    reason = maps.reason_of(code)
    return reason.label if reason is not None else f"reason-{code}"


def pod_name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace and name else ""


def name_flow(
    event: Event,
    *,
    node: str,
    realtime_offset_ns: int,
    endpoint: EndpointRecord | None,
    policy: EndpointPolicy | None,
    remote: IPCacheEntry | None,
    cookie_names: Mapping[int, str],
) -> Flow:
    """The Flow for one event. `realtime_offset_ns` turns the event's CLOCK_MONOTONIC time into
    CLOCK_REALTIME; `remote` is the ipcache entry of the remote address (longest prefix);
    `cookie_names` names cookies the endpoint's current policy no longer has (a policy that
    changed after the verdict)."""
    policy_text = ""
    if event.cookie:
        if policy is not None and event.cookie in policy.cookies:
            policy_text = policy.cookies[event.cookie]
        else:
            policy_text = cookie_names.get(event.cookie, "")
    remote_pod = ""
    if remote is not None and remote.kind == IPCacheKind.POD:
        remote_pod = pod_name(remote.pod_namespace, remote.pod_name)
    return Flow(
        node=node,
        time_ns=event.time_ns + realtime_offset_ns,
        direction=(
            FlowDirection.EGRESS if event.direction == Direction.FROM_POD else FlowDirection.INGRESS
        ),
        verdict=Verdict.DENY if event.verdict == maps.Verdict.DENY else Verdict.ALLOW,
        reason=reason_label(event.reason),
        protocol=event.protocol,
        src_ip=event.src_ip,
        dst_ip=event.dst_ip,
        src_port=event.src_port,
        dst_port=event.dst_port,
        local_pod=pod_name(endpoint.pod_namespace, endpoint.pod_name) if endpoint else "",
        remote_pod=remote_pod,
        local_identity=event.local_identity,
        remote_identity=event.remote_identity,
        cookie=event.cookie,
        policy=policy_text,
    )
