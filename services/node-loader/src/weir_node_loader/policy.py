"""An endpoint's compiled policy as weir_policy_v1 entries, and how to change them: no I/O.

policy-compiler hands node-loader one `EndpointPolicy` per pod: per direction, whether it is
enforced, its default cookie, and entries (remote identity | any, protocol | any, port range |
any) -> verdict, cookie. The datapath looks entries up in an LPM trie whose key ends in the
protocol and the port (network byte order), so here

- a port range becomes the few bit prefixes that cover it exactly (`port_prefixes`),
- "any port" and "any protocol" become shorter prefixes,
- entries that land on the same key are merged (a DENY wins, else the smallest cookie), and an
  ALLOW inside a DENY's range of the same remote becomes that DENY (the trie alone would let
  the longer prefix win),

giving `Row -> RowValue`: the map's content for one endpoint, independent of slot and ifindex.
`plan` compares that with what the maps hold and says whether the endpoint needs a slot flip
(write the other slot, switch the config, clear the old slot): the unit of change is a whole
endpoint, so a packet never sees half an old and half a new policy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from weir.models import DirectionPolicy, EndpointPolicy, PolicyEntry, Verdict

from weir_node_loader import maps
from weir_node_loader.maps import Direction, EpPolicyFlag

log = logging.getLogger("weir.node_loader.policy")

PORT_BITS = 16
MAX_PORT = (1 << PORT_BITS) - 1


@dataclass(frozen=True, slots=True, order=True)
class Row:
    """One weir_policy_v1 key of an endpoint, without ifindex and slot.

    `prefixlen` is the key's (bits after its prefixlen field): POLICY_PREFIX_ANY_PROTO for any
    protocol, POLICY_PREFIX_ANY_PORT for any port, POLICY_PREFIX_PORT0 + n for a port prefix of
    n bits. Fields beyond the prefix are zero. `port` is in host byte order.
    """

    direction: int
    identity: int
    protocol: int
    prefixlen: int
    port: int = 0

    @property
    def port_bits(self) -> int | None:
        """How many leading bits of the port the row matches (None: no port in the prefix)."""
        if self.prefixlen < maps.POLICY_PREFIX_PORT0:
            return None
        return self.prefixlen - maps.POLICY_PREFIX_PORT0

    @property
    def port_range(self) -> tuple[int, int] | None:
        """The ports the row covers, inclusive (None: every port)."""
        bits = self.port_bits
        if bits is None:
            return None
        return self.port, self.port | ((1 << (PORT_BITS - bits)) - 1)

    def covers(self, other: Row) -> bool:
        """Whether every packet `other` matches also matches this row (same remote)."""
        if (self.direction, self.identity) != (other.direction, other.identity):
            return False
        if self.prefixlen > other.prefixlen:
            return False
        if self.prefixlen == maps.POLICY_PREFIX_ANY_PROTO:
            return True
        if self.protocol != other.protocol:
            return False
        mine, theirs = self.port_range, other.port_range
        if mine is None:
            return True
        return theirs is not None and mine[0] <= theirs[0] and theirs[1] <= mine[1]


@dataclass(frozen=True, slots=True)
class RowValue:
    verdict: int  # maps.Verdict
    cookie: int


@dataclass(frozen=True, slots=True)
class EpConfig:
    """The endpoint's weir_ep_policy_v1 value, without the slot."""

    identity: int
    flags: int
    ingress_cookie: int
    egress_cookie: int


@dataclass(frozen=True, slots=True)
class Compiled:
    """What the maps must hold for one endpoint."""

    config: EpConfig
    rows: Mapping[Row, RowValue]
    skipped: tuple[str, ...] = ()  # entries that could not be realized, and why


@dataclass(frozen=True, slots=True)
class Realized:
    """What the maps hold for one endpoint: its config (None: no config entry) with the active
    slot, and the rows of each slot. The inactive slot should be empty; rows there are leftovers
    of an interrupted flip (or of an earlier endpoint on the same ifindex)."""

    config: EpConfig | None
    slot: int
    slots: Mapping[int, Mapping[Row, RowValue]] = field(default_factory=dict)

    @property
    def rows(self) -> Mapping[Row, RowValue]:
        return self.slots.get(self.slot, {}) if self.config is not None else {}

    @property
    def leftovers(self) -> Mapping[Row, RowValue]:
        if self.config is None:
            return {r: v for rows in self.slots.values() for r, v in rows.items()}
        return self.slots.get(1 - self.slot, {})


def port_prefixes(first: int, last: int) -> list[tuple[int, int]]:
    """The fewest (port, prefix bits) that cover [first, last] exactly; at most 30 for any
    16-bit range. [0, 65535] is one prefix of 0 bits."""
    if not 0 <= first <= last <= MAX_PORT:
        raise ValueError(f"port range {first}-{last} is not within 0-{MAX_PORT}")
    out = []
    port = first
    while port <= last:
        size = port & -port if port else 1 << PORT_BITS  # the largest aligned block at `port`
        while port + size - 1 > last:
            size >>= 1
        out.append((port, PORT_BITS - size.bit_length() + 1))
        port += size
    return out


def rows_of(direction: Direction, entry: PolicyEntry) -> list[Row]:
    """The rows one policy entry becomes; ValueError when it cannot be realized."""
    d = int(direction)
    if entry.identity < 0 or entry.identity > 0xFFFFFFFF:
        raise ValueError(f"identity {entry.identity} is not a 32-bit number")
    if entry.protocol == 0:
        if entry.port or entry.end_port:
            raise ValueError(f"a port ({entry.port}) without a protocol")
        return [Row(d, entry.identity, 0, maps.POLICY_PREFIX_ANY_PROTO)]
    if not 0 < entry.protocol < 256:
        raise ValueError(f"protocol {entry.protocol} is not an IP protocol number")
    if entry.port == 0:
        if entry.end_port:
            raise ValueError(f"end_port {entry.end_port} without a port")
        return [Row(d, entry.identity, entry.protocol, maps.POLICY_PREFIX_ANY_PORT)]
    last = entry.end_port or entry.port
    if last < entry.port:
        raise ValueError(f"end_port {entry.end_port} is below port {entry.port}")
    return [
        Row(d, entry.identity, entry.protocol, maps.POLICY_PREFIX_PORT0 + bits, port)
        for port, bits in port_prefixes(entry.port, last)
    ]


def _value(entry: PolicyEntry) -> RowValue:
    verdict = maps.Verdict.DENY if entry.verdict == Verdict.DENY else maps.Verdict.ALLOW
    return RowValue(int(verdict), entry.cookie & 0xFFFFFFFFFFFFFFFF)


def _wins(new: RowValue, old: RowValue) -> bool:
    """Which of two values for one key the map keeps: a DENY, else the smallest cookie."""
    if new.verdict != old.verdict:
        return new.verdict == maps.Verdict.DENY
    return new.cookie < old.cookie


def compile_direction(
    direction: Direction, policy: DirectionPolicy
) -> tuple[dict[Row, RowValue], list[str]]:
    rows: dict[Row, RowValue] = {}
    skipped: list[str] = []
    if not policy.enforced:
        return rows, skipped  # nothing is looked up for a direction that is not enforced
    for entry in policy.entries:
        try:
            entry_rows = rows_of(direction, entry)
        except ValueError as e:
            skipped.append(f"{direction.name.lower()} entry {entry}: {e}")
            continue
        value = _value(entry)
        for row in entry_rows:
            held = rows.get(row)
            if held is None or _wins(value, held):
                rows[row] = value
    denies = [(r, v) for r, v in rows.items() if v.verdict == maps.Verdict.DENY]
    if denies:
        for row, value in list(rows.items()):
            if value.verdict != maps.Verdict.ALLOW:
                continue
            for deny_row, deny in denies:
                if deny_row.covers(row):
                    rows[row] = deny
                    break
    return rows, skipped


def compile_policy(policy: EndpointPolicy) -> Compiled:
    """The maps' content for one endpoint's policy."""
    flags = 0
    if policy.ingress.enforced:
        flags |= EpPolicyFlag.INGRESS_ENFORCED
    if policy.egress.enforced:
        flags |= EpPolicyFlag.EGRESS_ENFORCED
    if policy.ipblock_matches_pods:
        flags |= EpPolicyFlag.IPBLOCK_PODS
    config = EpConfig(
        identity=policy.identity & 0xFFFFFFFF,
        flags=flags,
        ingress_cookie=policy.ingress.default_cookie & 0xFFFFFFFFFFFFFFFF,
        egress_cookie=policy.egress.default_cookie & 0xFFFFFFFFFFFFFFFF,
    )
    ingress, skipped_in = compile_direction(Direction.TO_POD, policy.ingress)
    egress, skipped_out = compile_direction(Direction.FROM_POD, policy.egress)
    return Compiled(config, {**ingress, **egress}, tuple(skipped_in + skipped_out))


@dataclass(frozen=True, slots=True)
class Flip:
    """How one endpoint's maps change, in this order: delete `delete_first` from `slot` and
    write `put` there (the slot no packet reads), then the config naming `slot` (if
    `write_config`: the one atomic switch), then delete `delete_after` from the other slot."""

    slot: int
    config: EpConfig
    put: Mapping[Row, RowValue]
    delete_first: tuple[Row, ...]
    write_config: bool
    delete_after: tuple[Row, ...]

    @property
    def flips(self) -> bool:
        return bool(self.put or self.delete_first or self.write_config)


def plan(compiled: Compiled, realized: Realized | None) -> Flip | None:
    """The change that makes the maps hold `compiled` (None: they already do)."""
    if realized is None or (realized.config is None and not realized.leftovers):
        return Flip(0, compiled.config, dict(compiled.rows), (), True, ())
    wanted = dict(compiled.rows)
    unchanged = realized.config == compiled.config and dict(realized.rows) == wanted
    if realized.config is not None and unchanged:
        if not realized.leftovers:
            return None
        # Only an interrupted flip's leftovers in the inactive slot: clear them.
        return Flip(
            realized.slot, compiled.config, {}, (), False, tuple(sorted(realized.leftovers))
        )
    target = 1 - realized.slot if realized.config is not None else 0
    there = realized.slots.get(target, {})
    other = realized.slots.get(1 - target, {})
    return Flip(
        slot=target,
        config=compiled.config,
        put={r: v for r, v in wanted.items() if there.get(r) != v},
        delete_first=tuple(sorted(r for r in there if r not in wanted)),
        write_config=True,
        delete_after=tuple(sorted(other)),
    )


def describe(
    rows: Mapping[Row, RowValue],
) -> list[tuple[int, int, int, tuple[int, int] | None, RowValue]]:
    """(direction, identity, protocol, port range, value) of rows, adjacent port prefixes of
    the same remote, protocol and value merged back into ranges (`weir bpf policy get`)."""
    out: list[tuple[int, int, int, tuple[int, int] | None, RowValue]] = []
    for row in sorted(rows):
        value = rows[row]
        rng = row.port_range
        if out and rng is not None:
            d, i, p, prev, v = out[-1]
            same = (d, i, p, v) == (row.direction, row.identity, row.protocol, value)
            if same and prev is not None and prev[1] + 1 == rng[0]:
                out[-1] = (d, i, p, (prev[0], rng[1]), v)
                continue
        out.append((row.direction, row.identity, row.protocol, rng, value))
    return out
