"""NATS for Weir services: a connection that reconnects, and JetStream KV with headers.

nats-py's own KV API neither lets a writer attach headers nor shows a watcher the headers of an
entry, and Weir needs both: the W3C trace context of the Kubernetes change that caused a write
rides in its headers. So `KvBucket` speaks the KV protocol directly — a bucket is the stream
`KV_<bucket>`, a key is the subject `$KV.<bucket>.<key>`, a delete is a message with header
`KV-Operation: DEL` — and `TypedKv` adds the catalogue's codec: values in and out are models,
a value that cannot be decoded is logged with its key, counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry.context import Context
from prometheus_client import CollectorRegistry, Counter

from weir import telemetry
from weir.catalog import Bucket
from weir.codec import Codec, CodecError

T = TypeVar("T")
log = logging.getLogger("weir.bus")

KV_OPERATION = "KV-Operation"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_DELETE_OPS = frozenset({"DEL", "PURGE"})


async def connect(
    url: str,
    *,
    name: str,
    on_change: Callable[[bool, str], None] = lambda ok, why: None,
    max_backoff: float = 10.0,
) -> NATS:
    """Connect to NATS, retrying the first connection with backoff until it succeeds.

    After the first connection nats-py reconnects by itself, forever. `on_change(connected,
    detail)` reports every transition so the health server can say whether the service is
    connected.
    """

    async def disconnected() -> None:
        on_change(False, "disconnected from NATS; reconnecting")
        log.warning("disconnected from NATS", extra={"nats_url": url})

    async def reconnected() -> None:
        on_change(True, f"connected to {url}")
        log.info("reconnected to NATS", extra={"nats_url": url})

    async def error(e: Exception) -> None:
        log.warning("NATS error: %s", e, extra={"nats_url": url})

    delay = 0.2
    while True:
        try:
            nc = await nats.connect(
                servers=url.split(","),
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        except (TimeoutError, OSError, nats.errors.Error) as e:
            on_change(False, f"cannot reach NATS at {url}: {e}")
            log.warning("cannot reach NATS, retrying in %.1fs: %s", delay, e)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_backoff)
            continue
        on_change(True, f"connected to {url}")
        log.info("connected to NATS", extra={"nats_url": url})
        return nc


@dataclass(frozen=True, slots=True)
class KvEntry:
    """One revision of one key. `value` is None when the key was deleted or purged."""

    key: str
    value: bytes | None
    revision: int
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.value is None


class CaughtUp:
    """Watch marker: every value that existed when the watch started has been delivered."""

    def __repr__(self) -> str:
        return "CAUGHT_UP"


CAUGHT_UP = CaughtUp()


class WatchCursor:
    """How far a consumer has got with a watch — what convergence barriers ask about.

    The watch records the stream sequence of every entry it delivers; the consumer calls
    `mark_applied(revision)` once it has acted on an entry. Caught up means: the server has
    nothing left to deliver and everything delivered has been applied.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.delivered = 0
        self.applied = 0
        # The consumer sequence of the last message the watch received: the server counts
        # every message it sends this consumer, filtered or not, in the same sequence.
        self.received = 0
        self._sub: Any = None

    def mark_applied(self, revision: int) -> None:
        self.applied = max(self.applied, revision)

    async def caught_up(self) -> bool:
        if self._sub is None:
            return False
        info = await self._sub.consumer_info()
        # A message the server has sent but the client library has not yet handed to the watch
        # is pending too. Compare consumer sequences, not stream sequences: for a filtered watch
        # the server's delivered stream sequence runs ahead over messages the filter skips.
        server_sent = info.delivered.consumer_seq if info.delivered else 0
        return bool(
            info.num_pending == 0
            and self.received >= server_sent
            and self.applied >= self.delivered
        )


@dataclass(frozen=True, slots=True)
class _Skipped:
    revision: int


class RevisionMismatch(Exception):
    """A compare-and-set write lost: the key is not at the revision the writer expected."""


class KvBucket:
    """Raw access to one JetStream KV bucket: bytes in, bytes out, headers both ways."""

    def __init__(self, js: JetStreamContext, name: str) -> None:
        self.name = name
        self._js = js
        self._stream = f"KV_{name}"
        self._prefix = f"$KV.{name}."

    @classmethod
    async def ensure(
        cls,
        js: JetStreamContext,
        name: str,
        *,
        history: int = 1,
        replicas: int = 1,
        description: str = "",
    ) -> KvBucket:
        """Bind to the bucket, creating it first if it does not exist (idempotent)."""
        try:
            await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            try:
                await js.create_key_value(
                    bucket=name, history=history, replicas=replicas, description=description
                )
            except nats.js.errors.BadRequestError:
                await js.key_value(name)  # another replica created it first
        return cls(js, name)

    def subject(self, key: str) -> str:
        return self._prefix + key

    async def put(self, key: str, value: bytes, headers: Mapping[str, str] | None = None) -> int:
        ack = await self._js.publish(self.subject(key), value, headers=dict(headers or {}))
        return int(ack.seq)

    async def put_async(
        self, key: str, value: bytes | None, headers: Mapping[str, str] | None = None
    ) -> asyncio.Future[api.PubAck]:
        """Send a put (or, with value None, a delete) without waiting for the server's ack.

        Writes on one connection reach the stream in the order they were sent, so a writer can
        pipeline many and await the acks afterwards.
        """
        hdrs = dict(headers or {})
        if value is None:
            hdrs[KV_OPERATION] = "DEL"
        return await self._js.publish_async(self.subject(key), value or b"", headers=hdrs)

    async def update(
        self, key: str, value: bytes, *, last: int, headers: Mapping[str, str] | None = None
    ) -> int:
        """Compare-and-set: write only if the key's latest revision is `last` (0: absent)."""
        hdrs = dict(headers or {})
        hdrs[EXPECTED_LAST_SUBJECT_SEQ] = str(last)
        try:
            ack = await self._js.publish(self.subject(key), value, headers=hdrs)
        except nats.js.errors.APIError as e:
            if e.err_code == 10071:  # JSStreamWrongLastSequence
                raise RevisionMismatch(f"{self.name}/{key}: not at revision {last}") from None
            raise
        return int(ack.seq)

    async def create(self, key: str, value: bytes, headers: Mapping[str, str] | None = None) -> int:
        """Write only if the key has no live value (absent, or deleted)."""
        try:
            return await self.update(key, value, last=0, headers=headers)
        except RevisionMismatch:
            current = await self.get(key, include_deleted=True)
            if current is None or not current.deleted:
                raise
            return await self.update(key, value, last=current.revision, headers=headers)

    async def delete(
        self, key: str, headers: Mapping[str, str] | None = None, *, last: int | None = None
    ) -> int:
        """Delete `key`; with `last`, only if its latest revision is `last` (compare-and-set)."""
        hdrs = dict(headers or {})
        hdrs[KV_OPERATION] = "DEL"
        if last is None:
            ack = await self._js.publish(self.subject(key), b"", headers=hdrs)
            return int(ack.seq)
        return await self.update(key, b"", last=last, headers=hdrs)

    async def get(self, key: str, *, include_deleted: bool = False) -> KvEntry | None:
        try:
            raw = await self._js.get_msg(self._stream, subject=self.subject(key))
        except nats.js.errors.NotFoundError:
            return None
        headers = dict(raw.headers or {})
        deleted = headers.get(KV_OPERATION) in _DELETE_OPS
        if deleted and not include_deleted:
            return None
        return KvEntry(
            key=key,
            value=None if deleted else (raw.data or b""),
            revision=int(raw.seq or 0),
            headers=headers,
        )

    async def watch(
        self, pattern: str = ">", cursor: WatchCursor | None = None
    ) -> AsyncGenerator[KvEntry | CaughtUp, None]:
        """The latest value of every matching key, then `CAUGHT_UP`, then every later change.

        Deleted keys are not replayed before `CAUGHT_UP` (a fresh reader has nothing to delete);
        deletions after it arrive as entries with `value=None`.
        """
        queue: asyncio.Queue[KvEntry | CaughtUp | _Skipped] = asyncio.Queue(maxsize=4096)
        caught_up = False
        consumer_seq = 0  # of the last message handed to on_msg

        async def on_msg(msg: Msg) -> None:
            nonlocal caught_up, consumer_seq
            meta = msg.metadata
            consumer_seq = meta.sequence.consumer
            headers = dict(msg.headers or {})
            deleted = headers.get(KV_OPERATION) in _DELETE_OPS
            if cursor is not None:
                cursor.delivered = meta.sequence.stream
                cursor.received = meta.sequence.consumer
            if deleted and not caught_up:
                # Nothing to deliver, but it counts as applied only once everything before it
                # has been: the marker goes through the queue in order.
                if cursor is not None:
                    await queue.put(_Skipped(meta.sequence.stream))
            else:
                await queue.put(
                    KvEntry(
                        key=msg.subject[len(self._prefix) :],
                        value=None if deleted else msg.data,
                        revision=meta.sequence.stream,
                        headers=headers,
                    )
                )
            if not caught_up and meta.num_pending == 0:
                caught_up = True
                await queue.put(CAUGHT_UP)

        sub = await self._js.subscribe(
            self.subject(pattern),
            stream=self._stream,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=300,
        )
        if cursor is not None:
            cursor._sub = sub
        try:
            info = await sub.consumer_info()
            # Nothing left to send, and everything sent already handed to us: then nothing
            # matched, or on_msg has seen the last message (num_pending 0) itself. Messages
            # the server has sent but the client still holds are not delivered yet; the last
            # of them marks the catch-up when it arrives. (Consumer sequences, not stream ones:
            # for an empty filter the server starts the stream sequence at the stream's end.)
            sent = info.delivered.consumer_seq if info.delivered else 0
            if info.num_pending == 0 and sent <= consumer_seq and not caught_up:
                caught_up = True
                await queue.put(CAUGHT_UP)
            while True:
                item = await queue.get()
                if isinstance(item, _Skipped):
                    if cursor is not None:
                        cursor.mark_applied(item.revision)
                    continue
                yield item
        finally:
            # A closed connection raises here; the server drops the consumer by itself then.
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def snapshot(self, pattern: str = ">") -> dict[str, KvEntry]:
        """The current value of every matching key (a watch, stopped once caught up)."""
        out: dict[str, KvEntry] = {}
        watch = self.watch(pattern)
        try:
            async for item in watch:
                if isinstance(item, CaughtUp):
                    return out
                out[item.key] = item
        finally:
            await watch.aclose()
        return out


class BusMetrics:
    """Counters every service keeps about the bus, registered in the service's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decode_errors = Counter(
            "weir_bus_decode_errors",
            "Messages or KV values that could not be decoded, by source and reason",
            ["source", "reason"],
            registry=registry,
        )
        self.kv_writes = Counter(
            "weir_kv_writes",
            "KV writes sent, by bucket and operation",
            ["bucket", "op"],
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class Update(Generic[T]):
    """A decoded change of one key: `value` None means deleted. `context` is its trace."""

    key: str
    value: T | None
    revision: int
    context: Context


class TypedKv(Generic[T]):
    """A catalogue bucket: models in, models out, trace context on every write."""

    def __init__(self, raw: KvBucket, spec: Bucket[T], metrics: BusMetrics) -> None:
        self.raw = raw
        self.spec = spec
        self.codec = Codec(spec.schema)
        self._metrics = metrics

    def encode(self, value: T) -> bytes:
        return self.codec.encode(value)

    def decode(self, key: str, data: bytes) -> T | None:
        """The model in `data`, or None (logged and counted) when it cannot be read."""
        try:
            return self.codec.decode(data)
        except CodecError as e:
            self._metrics.decode_errors.labels(self.spec.name, e.reason).inc()
            log.error(
                "skipping undecodable value in %s key %s: %s",
                self.spec.name,
                key,
                e,
                extra={"bucket": self.spec.name, "key": key, "reason": e.reason},
            )
            return None

    def count_write(self, op: str) -> None:
        """Count a write sent through `raw` directly (pipelined writers bypass put/delete)."""
        self._metrics.kv_writes.labels(self.spec.name, op).inc()

    @staticmethod
    def trace_headers(context: Context | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        telemetry.inject(headers, context)
        return headers

    async def put(self, key: str, value: T, context: Context | None = None) -> int:
        self.count_write("put")
        return await self.raw.put(key, self.encode(value), self.trace_headers(context))

    async def delete(self, key: str, context: Context | None = None) -> int:
        self.count_write("delete")
        return await self.raw.delete(key, self.trace_headers(context))

    async def get(self, key: str) -> T | None:
        entry = await self.raw.get(key)
        if entry is None or entry.value is None:
            return None
        return self.decode(key, entry.value)

    async def watch(
        self, pattern: str = ">", cursor: WatchCursor | None = None
    ) -> AsyncGenerator[Update[T] | CaughtUp, None]:
        """Like KvBucket.watch, decoded. Undecodable values are skipped (logged, counted; and
        marked applied on `cursor`, as there is nothing to apply)."""
        watch = self.raw.watch(pattern, cursor)
        try:
            async for item in watch:
                if isinstance(item, CaughtUp):
                    yield item
                    continue
                ctx = telemetry.extract(item.headers)
                if item.value is None:
                    yield Update(item.key, None, item.revision, ctx)
                    continue
                value = self.decode(item.key, item.value)
                if value is not None:
                    yield Update(item.key, value, item.revision, ctx)
                elif cursor is not None:
                    cursor.mark_applied(item.revision)
        finally:
            await watch.aclose()


async def open_bucket(
    js: JetStreamContext, spec: Bucket[T], metrics: BusMetrics, *, replicas: int = 1
) -> TypedKv[T]:
    raw = await KvBucket.ensure(
        js, spec.name, history=spec.history, replicas=replicas, description=spec.description
    )
    return TypedKv(raw, spec, metrics)
