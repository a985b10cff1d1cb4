"""The wire format of every Weir message: msgpack, versioned, typed.

A message is the msgpack array `[schema_version, type_name, payload]`. The reader checks the
version before it looks at the payload, so a producer running a newer schema is refused loudly
(and counted by the caller) instead of being misread. Payloads decode straight into the frozen
dataclasses of weir.models with full type validation (msgspec), so a malformed value never
reaches service logic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class CodecError(ValueError):
    """A message that cannot be read. `reason` is a short, stable label for metrics."""

    reason = "malformed"


class UnknownSchemaVersion(CodecError):
    reason = "unknown_version"


class UnknownMessageType(CodecError):
    reason = "unknown_type"


class MalformedMessage(CodecError):
    reason = "malformed"


@dataclass(frozen=True)
class Schema(Generic[T]):
    """A named message schema: the version this code writes and the dataclass types it carries.

    Bump `version` whenever a change is not readable by the previous code (a renamed or retyped
    field); additive fields with defaults keep the version.
    """

    name: str
    version: int
    types: tuple[type[T], ...]
    _by_name: dict[str, type[T]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.__name__: t for t in self.types})

    def type_named(self, name: str) -> type[T] | None:
        return self._by_name.get(name)


_Envelope = tuple[int, str, msgspec.Raw]
_NATIVE = (bytes, bytearray, datetime)  # msgpack carries these as they are


class Codec(Generic[T]):
    """Encodes and decodes the messages of one schema. Stateless after construction, but for
    remembering which types need the sorting pass (so no encode tries the fast path twice)."""

    def __init__(self, schema: Schema[T]) -> None:
        self.schema = schema
        # Deterministic order: equal values always give equal bytes, so writers can skip no-ops.
        self._encoder = msgspec.msgpack.Encoder(order="deterministic")
        self._in_order = msgspec.msgpack.Encoder()  # for trees already put in canonical order
        self._envelope = msgspec.msgpack.Decoder(_Envelope)
        self._decoders = {t.__name__: msgspec.msgpack.Decoder(t) for t in schema.types}
        self._int_keyed: set[str] = set()  # types seen with a map msgspec cannot sort

    def encode(self, value: T) -> bytes:
        name = type(value).__name__
        if name not in self._decoders:
            raise TypeError(f"{name} is not a type of schema {self.schema.name}")
        envelope = (self.schema.version, name, value)
        if name not in self._int_keyed:
            try:
                return self._encoder.encode(envelope)
            except TypeError:
                self._int_keyed.add(name)
        # msgspec's deterministic order sorts string-keyed maps only; a map keyed by integers
        # (EndpointPolicy.cookies) is sorted here instead, with the same result.
        plain = msgspec.to_builtins(envelope, builtin_types=_NATIVE, str_keys=False)
        return self._in_order.encode(_canonical(plain))

    def decode(self, data: bytes) -> T:
        try:
            version, name, payload = self._envelope.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise MalformedMessage(f"not a {self.schema.name} message: {e}") from None
        if version != self.schema.version:
            raise UnknownSchemaVersion(
                f"{self.schema.name} schema version {version}; this build reads "
                f"version {self.schema.version}"
            )
        decoder = self._decoders.get(name)
        if decoder is None:
            raise UnknownMessageType(f"{self.schema.name} has no message type {name!r}")
        try:
            value: T = decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise MalformedMessage(f"bad {name} payload: {e}") from None
        return value


def _canonical(tree: Any) -> Any:
    """Builtins with every map's keys sorted (by type name first, so mixed keys still sort)."""
    if isinstance(tree, dict):
        items = sorted(tree.items(), key=lambda kv: (type(kv[0]).__name__, kv[0]))
        return {k: _canonical(v) for k, v in items}
    if isinstance(tree, (list, tuple)):
        return [_canonical(v) for v in tree]
    return tree


def to_builtins(value: Any) -> Any:
    """A model as plain dicts and lists (for printing as JSON or YAML)."""
    return msgspec.to_builtins(value, order="deterministic")


def type_names(types: Iterable[type]) -> list[str]:
    return [t.__name__ for t in types]
