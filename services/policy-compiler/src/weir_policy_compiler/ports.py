"""NetworkPolicy ports: protocol numbers, numeric ports and ranges, named ports per pod.

A rule's port is a protocol (default TCP, already defaulted by normalization) with either no
port (every port of that protocol), a number, a number with endPort (an inclusive range), or a
name. A name means a container port of the *destination* pod with that name and the rule's
protocol: for ingress the local pod's, for egress each remote pod's — so the same rule can open
different numbers towards different pods, and nothing towards a pod without such a port.

The protocol is part of every entry: an SCTP rule never opens TCP, whatever the datapath
supports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from weir.models import ContainerPort, PolicyPort, Protocol

PROTOCOL_NUMBERS: dict[Protocol, int] = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
ANY_PROTOCOL = 0
ANY_PORT = 0
MAX_PORT = 65535

# IANA_SVC_NAME, as the API validates container port names: 1-15 characters, lower-case
# letters, digits and inner hyphens (never two together), at least one letter.
_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    """One port of a rule: `name` set means a named port, resolved per destination pod;
    otherwise `port`..`end_port` (0..0: every port of `protocol`)."""

    protocol: int
    port: int = ANY_PORT
    end_port: int = ANY_PORT
    name: str = ""
    protocol_name: Protocol = Protocol.TCP


ALL_PORTS = PortSpec(protocol=ANY_PROTOCOL)


def parse_port(raw: PolicyPort, where: str) -> PortSpec | str:
    """The spec of one NetworkPolicyPort, or why it cannot be used."""
    proto = PROTOCOL_NUMBERS.get(raw.protocol)
    if proto is None:
        return f"{where}: protocol {raw.protocol} is not supported"
    port, end = raw.port, raw.end_port
    if isinstance(port, str):
        if end is not None:
            return f"{where}: endPort needs a numeric port, not {port!r}"
        if not _SVC_NAME.fullmatch(port) or "--" in port or not re.search("[a-z]", port):
            return f"{where}: {port!r} is not a valid port name"
        return PortSpec(protocol=proto, name=port, protocol_name=raw.protocol)
    if port is None:
        if end is not None:
            return f"{where}: endPort needs a port"
        return PortSpec(protocol=proto, protocol_name=raw.protocol)
    if not 1 <= port <= MAX_PORT:
        return f"{where}: port {port} is outside 1-{MAX_PORT}"
    if end is None:
        return PortSpec(protocol=proto, port=port, end_port=port, protocol_name=raw.protocol)
    if not port <= end <= MAX_PORT:
        return f"{where}: endPort {end} must lie in {port}-{MAX_PORT}"
    return PortSpec(protocol=proto, port=port, end_port=end, protocol_name=raw.protocol)


def resolve_named(spec: PortSpec, ports: Iterable[ContainerPort]) -> set[int]:
    """The numbers `spec`'s name has among one pod's container ports, for the rule's protocol."""
    return {p.port for p in ports if p.name == spec.name and p.protocol == spec.protocol_name}


def named_ports(ports: Iterable[ContainerPort]) -> frozenset[tuple[str, Protocol]]:
    return frozenset((p.name, p.protocol) for p in ports if p.name)
