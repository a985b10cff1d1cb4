"""Rule cookies: a stable number for every (policy, direction, rule), and the text it stands for.

Every entry of a compiled table carries the cookie of the rule that made it, and every isolated
direction the cookie of the policy that isolated it, so a verdict the datapath reports can say
which policy and rule allowed or denied it. A cookie is the CRC32 of its text: the same rule
gets the same cookie on every node, in every replica and after every restart, with no registry
to keep. Rules are numbered from 1 in the order the policy lists them.
"""

from __future__ import annotations

import zlib
from enum import StrEnum


class Direction(StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


# Ingress from the node itself (kubelet probes), allowed by the `allow_host_ingress` setting.
HOST_TEXT = "weir: ingress from the node (kubelet probes)"


def rule_text(namespace: str, name: str, direction: Direction, index: int) -> str:
    """`x/allow-web: ingress rule 1` for spec.ingress[0] of policy x/allow-web."""
    return f"{namespace}/{name}: {direction} rule {index + 1}"


def default_text(namespace: str, name: str, direction: Direction) -> str:
    """The denial of everything no rule allows, in a direction this policy isolates."""
    return f"{namespace}/{name}: {direction} default deny"


def cookie_of(text: str) -> int:
    # 0 means "no cookie" in the datapath; CRC32 gives 0 for one text in 2^32.
    return zlib.crc32(text.encode()) or 1


class CookieBook:
    """The cookies one endpoint's tables use, with their texts.

    Two texts with one CRC are possible (rarely); the book then names both, so a verdict is never
    attributed to the wrong policy alone.
    """

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def add(self, text: str) -> int:
        cookie = cookie_of(text)
        held = self.names.get(cookie)
        if held is None:
            self.names[cookie] = text
        elif text not in held.split(" | "):
            self.names[cookie] = f"{held} | {text}"
        return cookie
