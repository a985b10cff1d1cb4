"""Running the allocation protocol (allocator.py) against KV weir-identities.

`drive` feeds a protocol generator the replies of a store; `KvStore` is the real store: each
operation is one JetStream request, compare-and-set by expected last revision, with the trace
context of the change that caused it in the headers. Lost compare-and-sets are counted here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Protocol, TypeVar

from opentelemetry.context import Context
from weir.bus import RevisionMismatch, TypedKv
from weir.identity import IdentityId
from weir.models import Identity

from .allocator import CONFLICT, Create, Delete, Get, Op, Recheck, Reply, Stored, Update

R = TypeVar("R")


class CasStore(Protocol):
    async def execute(self, op: Op, context: Context | None) -> Reply: ...


async def drive(
    steps: Generator[Op, Reply, R], store: CasStore, context: Context | None = None
) -> R:
    """Run a protocol generator to its result."""
    reply: Reply = None
    while True:
        try:
            op = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = await store.execute(op, context)


class KvStore:
    def __init__(
        self,
        kv: TypedKv[Identity],
        *,
        recheck: Callable[[IdentityId], Awaitable[bool]],
        on_conflict: Callable[[str, str], None],
    ) -> None:
        self._kv = kv
        self._recheck = recheck
        self._on_conflict = on_conflict

    async def execute(self, op: Op, context: Context | None) -> Reply:
        if isinstance(op, Recheck):
            return await self._recheck(op.number)
        raw = self._kv.raw
        if isinstance(op, Get):
            entry = await raw.get(op.key)
            if entry is None or entry.value is None:
                return None
            return Stored(self._kv.decode(op.key, entry.value), entry.revision)
        headers = self._kv.trace_headers(context)
        try:
            if isinstance(op, Create):
                self._kv.count_write("create")
                return await raw.create(op.key, self._kv.encode(op.value), headers)
            if isinstance(op, Update):
                self._kv.count_write("update")
                return await raw.update(
                    op.key, self._kv.encode(op.value), last=op.last, headers=headers
                )
            assert isinstance(op, Delete)
            self._kv.count_write("delete")
            return await raw.delete(op.key, headers, last=op.last)
        except RevisionMismatch:
            self._on_conflict(op.key.split(".", 1)[0], type(op).__name__.lower())
            return CONFLICT
