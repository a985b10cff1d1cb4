"""The indexes that keep compilation incremental.

- `SelectorCache`: every distinct peer selector in use, the live pod identities it selects,
  and the policies that use it. An identity coming or going is matched against each selector
  once (never against each endpoint), and yields just the policies whose selection changed.
- `CidrTable`: every CIDR identity (prefix -> id), with longest-prefix lookup, and per ipBlock
  the identities it allows; a prefix coming or going yields the policies whose blocks cover it.
- `MultiIndex`: key -> set of values, with empty sets dropped (so memory follows what exists).

This is the same split Cilium's SelectorCache makes: selections are maintained per selector,
and an endpoint's table is rebuilt only when one of the selections it uses changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Generic, TypeVar

from weir.identity import Reserved
from weir.models import IdentityLabels

from .plan import PolicyRef
from .selectors import BlockSelector, PeerSelector

K = TypeVar("K")
V = TypeVar("V")


class MultiIndex(Generic[K, V]):
    def __init__(self) -> None:
        self._sets: dict[K, set[V]] = {}

    def add(self, key: K, value: V) -> None:
        self._sets.setdefault(key, set()).add(value)

    def discard(self, key: K, value: V) -> None:
        values = self._sets.get(key)
        if values is not None:
            values.discard(value)
            if not values:
                del self._sets[key]

    def get(self, key: K) -> set[V]:
        return self._sets.get(key, set())

    def __contains__(self, key: object) -> bool:
        return key in self._sets

    def __iter__(self) -> Iterator[K]:
        return iter(self._sets)


class SelectorCache:
    """Peer selectors -> the live pod identities each selects, and the policies using each."""

    def __init__(self) -> None:
        self._selected: dict[PeerSelector, set[int]] = {}
        self._users = MultiIndex[PeerSelector, PolicyRef]()

    def selected(self, selector: PeerSelector) -> set[int]:
        return self._selected.get(selector, set())

    def acquire(
        self, selector: PeerSelector, user: PolicyRef, live: Iterable[tuple[int, IdentityLabels]]
    ) -> None:
        """`user` now uses `selector`; a selector new to the cache scans the live identities
        once (a policy change, not an endpoint's cost)."""
        if selector not in self._selected:
            self._selected[selector] = {i for i, labels in live if selector.matches(labels)}
        self._users.add(selector, user)

    def release(self, selector: PeerSelector, user: PolicyRef) -> None:
        self._users.discard(selector, user)
        if selector not in self._users:
            self._selected.pop(selector, None)

    def identity_on(self, identity: int, labels: IdentityLabels) -> set[PolicyRef]:
        """A pod identity became live: the policies whose selections now include it."""
        changed: set[PolicyRef] = set()
        for selector, ids in self._selected.items():
            if selector.matches(labels):
                ids.add(identity)
                changed |= self._users.get(selector)
        return changed

    def identity_off(self, identity: int) -> set[PolicyRef]:
        changed: set[PolicyRef] = set()
        for selector, ids in self._selected.items():
            if identity in ids:
                ids.discard(identity)
                changed |= self._users.get(selector)
        return changed

    def __len__(self) -> int:
        return len(self._selected)


def _mask(length: int) -> int:
    return ((1 << length) - 1) << (32 - length) if length else 0


class _BlocksByCidr:
    """ipBlocks indexed by their cidr, so the blocks covering a prefix are found in at most
    33 lookups (one per shorter-or-equal prefix length) rather than by scanning every block."""

    def __init__(self) -> None:
        self._by_cidr = MultiIndex[tuple[int, int], BlockSelector]()  # (length, address)
        self._lengths: Counter[int] = Counter()

    def add(self, block: BlockSelector) -> None:
        key = (block.cidr.prefixlen, int(block.cidr.network_address))
        if block not in self._by_cidr.get(key):
            self._by_cidr.add(key, block)
            self._lengths[key[0]] += 1

    def discard(self, block: BlockSelector) -> None:
        key = (block.cidr.prefixlen, int(block.cidr.network_address))
        if block in self._by_cidr.get(key):
            self._by_cidr.discard(key, block)
            self._lengths[key[0]] -= 1
            if not self._lengths[key[0]]:
                del self._lengths[key[0]]

    def covering(self, prefix: IPv4Network) -> list[BlockSelector]:
        """Blocks whose cidr holds `prefix` (what `BlockSelector.overlaps` says)."""
        address = int(prefix.network_address)
        out: list[BlockSelector] = []
        for length in self._lengths:
            if length <= prefix.prefixlen:
                out.extend(self._by_cidr.get((length, address & _mask(length))))
        return out


class CidrTable:
    """CIDR identities by prefix, from both sources (weir-identities `labels.cidr`, weir-ipcache
    CIDR and world entries), counted so either source alone keeps a prefix known.

    Everything is indexed by prefix, never scanned: a policy with 10,000 ipBlocks whose CIDR
    identities arrive one by one costs 10,000 small steps, not 10,000 scans of 10,000."""

    def __init__(self) -> None:
        self._sources: Counter[tuple[IPv4Network, int]] = Counter()
        # prefix length -> network address -> identities (longest-prefix lookup in 33 steps)
        self._by_length: dict[int, dict[int, set[int]]] = {}
        self._users = MultiIndex[BlockSelector, PolicyRef]()
        self._used = _BlocksByCidr()
        self._allowed: dict[BlockSelector, set[int]] = {}  # cache, dropped per covered change
        self._cached = _BlocksByCidr()

    # --- prefixes -----------------------------------------------------------------------------

    def add(self, prefix: IPv4Network, identity: int) -> bool:
        """Count one source of (prefix, identity). True when the pair is new."""
        pair = (prefix, identity)
        self._sources[pair] += 1
        if self._sources[pair] > 1:
            return False
        nets = self._by_length.setdefault(prefix.prefixlen, {})
        nets.setdefault(int(prefix.network_address), set()).add(identity)
        self._invalidate(prefix)
        return True

    def remove(self, prefix: IPv4Network, identity: int) -> bool:
        """Drop one source of (prefix, identity). True when the pair is gone."""
        pair = (prefix, identity)
        if self._sources[pair] <= 0:
            return False
        self._sources[pair] -= 1
        if self._sources[pair] > 0:
            return False
        del self._sources[pair]
        nets = self._by_length[prefix.prefixlen]
        ids = nets[int(prefix.network_address)]
        ids.discard(identity)
        if not ids:
            del nets[int(prefix.network_address)]
        if not nets:
            del self._by_length[prefix.prefixlen]
        self._invalidate(prefix)
        return True

    def _invalidate(self, prefix: IPv4Network) -> None:
        for block in self._cached.covering(prefix):
            del self._allowed[block]
            self._cached.discard(block)

    def pairs(self) -> Iterator[tuple[IPv4Network, int]]:
        return iter(self._sources)

    def lookup(self, address: IPv4Address) -> int | None:
        """The identity of `address`'s longest matching CIDR prefix (what the datapath's LPM
        gives it when pod entries are left aside); the lowest id if two claim one prefix."""
        value = int(address)
        for length in sorted(self._by_length, reverse=True):
            mask = ((1 << length) - 1) << (32 - length) if length else 0
            ids = self._by_length[length].get(value & mask)
            if ids:
                return min(ids)
        return None

    # --- blocks -------------------------------------------------------------------------------

    def allowed(self, block: BlockSelector) -> set[int]:
        """The identities an ipBlock allows: every CIDR identity inside the block and outside
        its excepts. A block covering everything also allows WORLD, the identity of addresses
        no prefix covers."""
        cached = self._allowed.get(block)
        if cached is None:
            cached = {i for prefix, i in self._inside(block.cidr) if block.matches(prefix)}
            if block.cidr.prefixlen == 0:
                cached.add(int(Reserved.WORLD))
            self._allowed[block] = cached
            self._cached.add(block)
        return cached

    def _inside(self, cidr: IPv4Network) -> Iterator[tuple[IPv4Network, int]]:
        """(prefix, identity) for every known prefix within `cidr`: for each longer-or-equal
        length, the few candidate addresses when there are few, else that length's entries."""
        base, mask = int(cidr.network_address), _mask(cidr.prefixlen)
        for length, nets in self._by_length.items():
            if length < cidr.prefixlen:
                continue
            step = 1 << (32 - length)
            candidates = 1 << (length - cidr.prefixlen)
            if candidates <= len(nets):
                found = ((a, nets.get(a)) for a in range(base, base + candidates * step, step))
            else:
                found = ((a, ids) for a, ids in nets.items() if a & mask == base)
            for address, ids in found:
                for identity in ids or ():
                    yield IPv4Network((address, length)), identity

    def acquire(self, block: BlockSelector, user: PolicyRef) -> None:
        self._users.add(block, user)
        self._used.add(block)

    def release(self, block: BlockSelector, user: PolicyRef) -> None:
        self._users.discard(block, user)
        if block not in self._users:
            self._used.discard(block)
            if self._allowed.pop(block, None) is not None:
                self._cached.discard(block)

    def users_covering(self, prefix: IPv4Network) -> set[PolicyRef]:
        """Policies with a block that covers `prefix` (inside its cidr, excepts included):
        what those blocks allow, or what addresses inside them resolve to, may have changed."""
        out: set[PolicyRef] = set()
        for block in self._used.covering(prefix):
            out |= self._users.get(block)
        return out
