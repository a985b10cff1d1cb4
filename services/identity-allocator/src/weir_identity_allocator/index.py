"""What KV weir-identities holds, as this replica last saw it (fed by a watch).

Two maps with revisions: `id.<n>` -> Identity and `labels.<hash>` -> Identity. The allocator
asks it for candidates to skip and orphans to revive, garbage collection for what exists, and
the service for which number a label set has. It is a cache: every decision that matters is
made by compare-and-set against the bucket itself.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView
from dataclasses import dataclass

from weir.models import Identity

from .labels import LabelHash, label_hash

_ID = "id."
_LABELS = "labels."


@dataclass(frozen=True, slots=True)
class Held:
    """A live key: `value` is None when it could not be decoded."""

    value: Identity | None
    revision: int


class IdentityIndex:
    def __init__(self) -> None:
        self.ids: dict[int, Held] = {}
        self.labels: dict[LabelHash, Held] = {}
        # label hash -> numbers whose id key holds that label set (normally one)
        self._by_hash: dict[LabelHash, set[int]] = {}

    def apply(self, key: str, value: Identity | None, revision: int, *, live: bool) -> bool:
        """Record a change of `key` (live=False: deleted). False when the key is not ours."""
        if key.startswith(_ID):
            try:
                number = int(key[len(_ID) :])
            except ValueError:
                return False
            self._unlink(number)
            if live:
                self.ids[number] = Held(value, revision)
                if value is not None:
                    self._by_hash.setdefault(label_hash(value.labels), set()).add(number)
            else:
                self.ids.pop(number, None)
            return True
        if key.startswith(_LABELS):
            h = LabelHash(key[len(_LABELS) :])
            if live:
                self.labels[h] = Held(value, revision)
            else:
                self.labels.pop(h, None)
            return True
        return False

    def _unlink(self, number: int) -> None:
        old = self.ids.get(number)
        if old is not None and old.value is not None:
            h = label_hash(old.value.labels)
            numbers = self._by_hash.get(h)
            if numbers is not None:
                numbers.discard(number)
                if not numbers:
                    del self._by_hash[h]

    @property
    def numbers(self) -> KeysView[int]:
        """Every number with a live id key (a live view: candidates skip these)."""
        return self.ids.keys()

    def number_of(self, h: LabelHash) -> int | None:
        """The number labels.<h> names, when it names one that holds the label set."""
        held = self.labels.get(h)
        if held is None or held.value is None:
            return None
        owner = self.ids.get(held.value.id)
        if owner is None or owner.value is None or label_hash(owner.value.labels) != h:
            return None
        return held.value.id

    def holders(self, h: LabelHash) -> set[int]:
        """Numbers whose id key holds label set `h`."""
        return set(self._by_hash.get(h, ()))

    def orphans(self, h: LabelHash) -> list[tuple[int, int]]:
        """(number, revision) of id keys holding `h` while labels.<h> is absent, lowest number
        first, so replicas reviving at once pick the same one."""
        if h in self.labels:
            return []
        return sorted((n, self.ids[n].revision) for n in self._by_hash.get(h, ()))

    def __iter__(self) -> Iterator[tuple[int, Held]]:
        return iter(sorted(self.ids.items()))
