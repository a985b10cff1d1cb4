"""What k8s-watcher decides, with no I/O: which KV writes bring weir-k8s to the API's state.

`Mirror` holds what the bucket holds, key by key, as encoded bytes. The codec encodes equal
values to equal bytes, so comparing bytes tells whether a write is needed: status noise that
normalization drops (a new annotation, a condition timestamp) costs no write at all, and a
value left by an older schema version, or garbage, simply differs and is overwritten.
Level-triggered: a full list is diffed against what the bucket actually holds, and deletes
whatever the API no longer has — so a restarted watcher converges with no leftovers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Write:
    """One KV operation: put `value`, or delete the key when `value` is None."""

    key: str
    value: bytes | None

    @property
    def is_delete(self) -> bool:
        return self.value is None


class Mirror:
    """The watcher's copy of the bucket's contents (key -> encoded value)."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: str) -> bytes | None:
        return self._values.get(key)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        head = prefix + "."
        return [k for k in self._values if k.startswith(head)]

    def load(self, prefix: str, actual: Mapping[str, bytes]) -> None:
        """Replace what is known under `prefix` with what the bucket actually holds."""
        for key in self.keys_with_prefix(prefix):
            del self._values[key]
        self._values.update(actual)

    def put(self, key: str, value: bytes) -> Write | None:
        """The write that makes `key` hold `value`, or None when it already does."""
        if self._values.get(key) == value:
            return None
        self._values[key] = value
        return Write(key, value)

    def delete(self, key: str) -> Write | None:
        """The delete of `key`, or None when the bucket does not hold it."""
        if self._values.pop(key, None) is None:
            return None
        return Write(key, None)

    def forget(self, key: str) -> None:
        """A write to `key` failed: its content in the bucket is unknown until the next resync."""
        self._values.pop(key, None)

    def resync(self, prefix: str, listed: Mapping[str, bytes]) -> list[Write]:
        """Writes that make everything under `prefix` equal `listed` (a complete API list)."""
        writes = [w for key, value in listed.items() if (w := self.put(key, value))]
        stale = [key for key in self.keys_with_prefix(prefix) if key not in listed]
        writes.extend(w for key in stale if (w := self.delete(key)))
        return writes
