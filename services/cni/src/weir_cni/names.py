"""Names and MAC addresses derived from the container id.

Deriving them (rather than letting the kernel pick) makes ADD repeatable: a second ADD for
the same container finds the same veth and returns the same result, and DEL and GC can find
a container's veth from its id alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import sha256
else:
    try:
        # CPython's built-in SHA-256: hashlib would load OpenSSL, ~3 ms of every plugin run.
        from _sha256 import sha256
    except ImportError:  # another interpreter
        from hashlib import sha256

HOST_PREFIX = "wr"
# "wr" + 11 hex = 13 characters, inside Linux's 15; 44 bits keep collisions out of reach on a node.
_HASH_CHARS = 11
HOST_IFNAME = re.compile(rf"{HOST_PREFIX}[0-9a-f]{{{_HASH_CHARS}}}")


def host_ifname(container_id: str) -> str:
    """The host-side veth in the node's network namespace."""
    return HOST_PREFIX + sha256(container_id.encode()).hexdigest()[:_HASH_CHARS]


def _mac(seed: str) -> str:
    digest = bytearray(sha256(seed.encode()).digest()[:6])
    # Locally administered (bit 1) unicast (bit 0 clear): never a vendor's or a multicast MAC.
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in digest)


def pod_mac(container_id: str) -> str:
    """The pod side's MAC; only the veth pair's two ends share its segment."""
    return _mac("pod/" + container_id)


def host_mac(container_id: str) -> str:
    """The host side's MAC, which the pod learns for its gateway."""
    return _mac("host/" + container_id)
