"""The allocator's asyncio side: three watches, one reconcile loop, releases in the background.

The watches keep local copies up to date — weir-k8s in a K8sView, weir-identities in an
IdentityIndex, weir-ipcache in a Mirror — and mark the work dirty. A pass (never two at once)
then does, from the whole view:
  1. every label set something needs and has no number yet: allocate (allocator.py, by
     compare-and-set, many at once);
  2. plan the ipcache and write only what differs from the bucket, each write carrying the
     trace context of the Kubernetes change that caused it;
  3. hand the numbers in use to the garbage collector; those past their grace period are
     released in background tasks (a release waits for weir-k8s to catch up before its last
     step, which a pass must not do).
Nothing acts before all three watches have replayed their bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from weir import catalog, telemetry
from weir.bus import CaughtUp, TypedKv, WatchCursor
from weir.identity import CLUSTER_MIN, IdentityId, Reserved, is_cidr_identity
from weir.models import Identity, IdentityLabels, IPCacheEntry, IPCacheKind, K8sObject

from . import allocator as al
from . import core, ipcache
from .config import AllocatorConfig
from .gc import Collector
from .index import IdentityIndex
from .labels import LabelHash, label_hash, reserved_labels
from .metrics import Metrics
from .store import KvStore, drive

log = logging.getLogger("weir.identity_allocator")

Clock = Callable[[], float]
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One number as garbage collection sees it."""

    labels: IdentityLabels
    label_hash: LabelHash
    labels_revision: int | None  # of labels.<hash> when it names this number


class IdentityAllocator:
    def __init__(
        self,
        *,
        config: AllocatorConfig,
        k8s: TypedKv[K8sObject],
        identities: TypedKv[Identity],
        ipcache_kv: TypedKv[IPCacheEntry],
        k8s_last_revision: Callable[[], Awaitable[int]],
        metrics: Metrics,
        tracer: trace.Tracer,
        on_state: Callable[[bool, str], None],
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.k8s = k8s
        self.identities = identities
        self.ipcache_kv = ipcache_kv
        self._k8s_last_revision = k8s_last_revision
        self.metrics = metrics
        self.tracer = tracer
        self._on_state = on_state
        self.clock = clock
        self.rng = rng or random.Random()

        self.view = core.K8sView()
        self.index = IdentityIndex()
        self.mirror = ipcache.Mirror()
        self.collector = Collector(config.identity_gc_grace_seconds)
        self.cluster_space = al.cluster_space(config.cluster_id_max)
        self.k8s_cursor = WatchCursor(catalog.K8S.name)
        self.store = KvStore(identities, recheck=self._recheck, on_conflict=self._conflict)

        # This replica's number for each label set: set by allocations, dropped when the index
        # shows its labels key or id key changed (the next pass resolves it again).
        self.numbers: dict[LabelHash, int] = {}
        # weir-k8s key -> (revision, trace context) of its latest change; deleted keys stay
        # until the next pass has acted on their deletion.
        self._contexts: dict[str, tuple[int, Context]] = {}
        self._gone: set[str] = set()
        self._latest: tuple[int, Context] = (0, Context())
        self._reported: set[core.Problem] = set()
        self._releasing: dict[int, asyncio.Task[None]] = {}
        self._released: set[int] = set()

        self._synced = {"k8s": False, "identities": False, "ipcache": False}
        self._all_synced = asyncio.Event()
        self.ready = False
        self._dirty = asyncio.Event()
        self._passing = False
        self._in_flight = 0
        self._retry_at: float | None = None
        self._failures = 0

    # --- barrier and health ----------------------------------------------------------------

    def busy(self) -> str:
        """What is still pending (empty: nothing): the barrier's `busy`."""
        if not self.ready:
            waiting = [name for name, done in self._synced.items() if not done]
            return f"replaying {', '.join(waiting) or 'done; first pass running'}"
        if self._dirty.is_set() or self._passing:
            return "a reconcile pass is pending"
        if self._in_flight:
            return f"{self._in_flight} KV writes not yet acknowledged"
        if self._retry_at is not None:
            return "retrying a failed allocation or write"
        return ""

    # --- watches -----------------------------------------------------------------------------

    async def watch_k8s(self) -> None:
        async for item in self.k8s.watch(">", self.k8s_cursor):
            if isinstance(item, CaughtUp):
                self._synced_one("k8s")
                continue
            relevant = self.view.relevant(item.key)
            if relevant:
                problem = self.view.apply(item.key, item.value)
                if problem is not None:
                    self._report([problem], only=False)
                self._contexts[item.key] = (item.revision, item.context)
                self._latest = (item.revision, item.context)
                if item.value is None:
                    self._gone.add(item.key)
                else:
                    self._gone.discard(item.key)
                self._dirty.set()
            # Applied: the view includes it, and the dirty pass that will act on it is already
            # marked — the barrier waits for that pass through busy().
            self.k8s_cursor.mark_applied(item.revision)

    async def watch_identities(self) -> None:
        # The raw watch: an undecodable value still occupies its key (its number is taken).
        async for item in self.identities.raw.watch():
            if isinstance(item, CaughtUp):
                self._synced_one("identities")
                continue
            live = item.value is not None
            value = self.identities.decode(item.key, item.value) if item.value is not None else None
            is_id = item.key.startswith("id.")
            had = is_id and _number(item.key) in self.index.ids
            self.index.apply(item.key, value, item.revision, live=live)
            if item.key.startswith("labels."):
                h = LabelHash(item.key.split(".", 1)[1])
                mine = self.numbers.get(h)
                if mine is not None and (value is None or value.id != mine):
                    # Someone else's decision (a release, a repair): resolve it again.
                    del self.numbers[h]
            elif is_id and had and not live:
                gone = _number(item.key)
                for h in [h for h, n in self.numbers.items() if n == gone]:
                    del self.numbers[h]
            self._dirty.set()

    async def watch_ipcache(self) -> None:
        # The raw watch: an undecodable value is garbage to overwrite or delete, not nothing.
        async for item in self.ipcache_kv.raw.watch():
            if isinstance(item, CaughtUp):
                self._synced_one("ipcache")
                continue
            live = item.value is not None
            value = self.ipcache_kv.decode(item.key, item.value) if item.value is not None else None
            if self.mirror.observe(item.key, value, live=live) and self.ready:
                self._dirty.set()  # someone else's write, or a manual change: check it

    def _synced_one(self, name: str) -> None:
        if not self._synced[name]:
            self._synced[name] = True
            log.info("%s replayed", name)
            self._on_state(False, self.busy())
        if all(self._synced.values()):
            self._all_synced.set()
        self._dirty.set()

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile after the replay and on every change, forever (until cancelled)."""
        await self._all_synced.wait()
        while True:
            try:
                await self._pass()
            except Exception as e:  # KV unreachable mid-pass: keep serving, try again
                log.exception("reconcile pass failed: %s", e)
                self._schedule_retry()
            else:
                if self._retry_at is None:
                    self._failures = 0  # a clean pass: the next failure starts from 0.2s
                if not self.ready:
                    self.ready = True
                    log.info("first pass done: ready")
                self._on_state(True, self._summary())
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        wake = [self.clock() + self.config.resync_seconds]
        due = self.collector.next_due(skip=self._releasing.keys())
        if due is not None:
            wake.append(due)
        if self._retry_at is not None:
            wake.append(self._retry_at)
        timeout = max(0.0, min(wake) - self.clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._dirty.wait(), timeout)
        # Let a burst of changes land before the pass (they cost one pass, not one each).
        await asyncio.sleep(0)

    async def _pass(self) -> None:
        self._passing = True
        self._dirty.clear()
        started = time.perf_counter()
        self._retry_at = None
        try:
            needs = core.needs(self.view)
            await self._allocate_missing(needs)
            planned = ipcache.plan(self.view, needs, self.numbers)
            self._report([*needs.problems, *planned.problems])
            await self._write_ipcache(planned)
            await self._ensure_reserved()
            self._collect(needs)
            self._gauges(needs)
            for key in self._gone:
                self._contexts.pop(key, None)
            self._gone.clear()
        finally:
            self._passing = False
            self.metrics.pass_seconds.observe(time.perf_counter() - started)

    # --- 1. allocation -----------------------------------------------------------------------

    async def _allocate_missing(self, needs: core.Needs) -> None:
        missing = [h for h in needs.label_sets if h not in self.numbers]
        if not missing:
            return
        limit = asyncio.Semaphore(self.config.max_concurrent_allocations)
        failed = 0

        async def one(h: LabelHash) -> None:
            nonlocal failed
            labels = needs.label_sets[h]
            users = needs.users.get(h, [])
            kind = "cidr" if labels.cidr else "pod"
            async with limit:
                steps = al.allocate(
                    labels,
                    h,
                    space=al.CIDR_SPACE if labels.cidr else self.cluster_space,
                    rng=self.rng,
                    taken=self.index.numbers,
                    orphans=self.index.orphans(h),
                )
                try:
                    result = await drive(steps, self.store, self._cause(users))
                except Exception as e:  # lost races, an exhausted space, KV unreachable
                    failed += 1
                    self.metrics.allocation_failures.inc()
                    log.error(
                        "cannot allocate an identity for %s (needed by %s): %s",
                        _describe(labels),
                        ", ".join(users[:3]),
                        e,
                        extra={"label_hash": h},
                    )
                    return
            self.numbers[h] = result.number
            self.metrics.allocations.labels(kind, result.how.value).inc()
            level = logging.DEBUG if result.how is al.How.ADOPTED else logging.INFO
            log.log(
                level,
                "identity %d %s for %s (needed by %s%s)",
                result.number,
                result.how.value,
                _describe(labels),
                ", ".join(users[:3]),
                f" and {len(users) - 3} more" if len(users) > 3 else "",
                extra={
                    "identity": result.number,
                    "how": result.how.value,
                    "label_hash": h,
                    "conflicts": result.conflicts,
                },
            )

        # Sorted: replicas starting together take the same order, so one usually publishes
        # while the other adopts (cheap), instead of both reserving numbers for everything.
        await asyncio.gather(*(one(h) for h in sorted(missing)))
        if failed:
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        """Run another pass soon (backing off while failures repeat)."""
        if self._retry_at is not None:
            return  # one retry per pass, however many things failed in it
        delay = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
        self._failures += 1
        self._retry_at = self.clock() + delay

    # --- 2. ipcache --------------------------------------------------------------------------

    async def _write_ipcache(self, planned: ipcache.Plan) -> None:
        desired = {key: d.entry for key, d in planned.entries.items()}
        changes = self.mirror.diff(desired)
        if not changes:
            return
        sent: list[tuple[ipcache.Change, asyncio.Future[Any]]] = []
        try:
            for change in changes:
                sent.append((change, await self._send(change, planned.entries.get(change.key))))
        finally:
            # Even when sending failed part-way: what was sent is awaited and accounted for.
            failed = await self._acknowledged(sent)
        puts = sum(1 for c in changes if c.entry is not None)
        log.info(
            "ipcache: %d puts, %d deletes%s",
            puts,
            len(changes) - puts,
            f", {failed} failed" if failed else "",
            extra={"puts": puts, "deletes": len(changes) - puts, "failed": failed},
        )
        if failed:
            self._schedule_retry()

    async def _send(
        self, change: ipcache.Change, desired: ipcache.Desired | None
    ) -> asyncio.Future[Any]:
        """Send one write without waiting for its ack (writes on one connection stay in order)."""
        causes = desired.causes if desired is not None else _causes_of(change.previous)
        headers = self._span_headers(change, self._cause(causes))
        value = None if change.entry is None else self.ipcache_kv.encode(change.entry)
        self.ipcache_kv.count_write("put" if value is not None else "delete")
        ack = await self.ipcache_kv.raw.put_async(change.key, value, headers)
        self._in_flight += 1
        self.mirror.sent(change)
        log.debug(
            "ipcache %s %s%s",
            "put" if change.entry is not None else "delete",
            change.key,
            f" -> {change.entry.identity} ({_entry_owner(change.entry)})"
            if change.entry is not None
            else "",
            extra={"key": change.key},
        )
        return ack

    async def _acknowledged(self, sent: list[tuple[ipcache.Change, asyncio.Future[Any]]]) -> int:
        """Wait for the acks of `sent`; returns how many failed (each forgotten, to rewrite)."""
        failed = 0
        for change, ack in sent:
            try:
                await asyncio.wait_for(asyncio.shield(ack), 10)
            except Exception as e:  # any failure has one remedy: forget and write again
                ack.cancel()
                failed += 1
                self.mirror.forget(change.key)
                self.metrics.ipcache_write_failures.inc()
                log.error(
                    "ipcache write of %s failed: %s", change.key, e, extra={"key": change.key}
                )
            finally:
                self._in_flight -= 1
        return failed

    def _span_headers(self, change: ipcache.Change, ctx: Context) -> dict[str, str]:
        """Headers continuing the trace of the change that caused this write (none when the
        write has no cause, e.g. a leftover removed at start)."""
        if not trace.get_current_span(ctx).get_span_context().is_valid:
            return {}
        op = "put" if change.entry is not None else "delete"
        with self.tracer.start_as_current_span(
            f"ipcache {op}",
            context=ctx,
            kind=SpanKind.PRODUCER,
            attributes={"weir.key": change.key, "weir.bucket": catalog.IPCACHE.name},
        ):
            headers: dict[str, str] = {}
            telemetry.inject(headers)
            return headers

    def _cause(self, keys: Iterable[str]) -> Context:
        """The trace context of the latest change among `keys` (else of the latest change)."""
        best: tuple[int, Context] | None = None
        for key in keys:
            known = self._contexts.get(key)
            if known is not None and (best is None or known[0] > best[0]):
                best = known
        return (best or self._latest)[1]

    # --- reserved identities -----------------------------------------------------------------

    async def _ensure_reserved(self) -> None:
        """id.<n> for each reserved identity, so listings show them (level-triggered)."""
        for reserved in Reserved:
            want = Identity(id=int(reserved), labels=reserved_labels(reserved))
            held = self.index.ids.get(int(reserved))
            if held is not None and held.value == want:
                continue
            key = catalog.identity_id_key(int(reserved))
            op = al.Create(key, want) if held is None else al.Update(key, want, held.revision)
            reply = await self.store.execute(op, None)
            if reply is not al.CONFLICT:  # a conflict: another replica wrote it first
                log.info("reserved identity %d (%s) written", reserved, want.labels.reserved)

    # --- 3. garbage collection ---------------------------------------------------------------

    def _collect(self, needs: core.Needs) -> None:
        units = self._units()
        # Released by us, and the watch has not shown the deletes yet: not due again.
        self._released &= units.keys()
        for number in self._released:
            del units[number]
        used = core.in_use(self.index, needs.label_sets)
        due = self.collector.observe(units, used, self.clock())
        for number in due:
            if number not in self._releasing:
                task = asyncio.ensure_future(self._release(number, units[number]))
                self._releasing[number] = task

    def _units(self) -> dict[int, _Unit]:
        """Every allocated (non-reserved) number, with what a release needs to know."""
        units: dict[int, _Unit] = {}
        for number, held in self.index.ids.items():
            if number < CLUSTER_MIN or held.value is None:
                continue  # reserved, or unreadable (left alone, and logged by the bus)
            h = label_hash(held.value.labels)
            named = self.index.labels.get(h)
            revision = None
            if named is not None and named.value is not None and named.value.id == number:
                revision = named.revision
            units[number] = _Unit(held.value.labels, h, revision)
        for h, named in self.index.labels.items():
            value = named.value
            if value is not None and value.id >= CLUSTER_MIN and value.id not in units:
                # A labels key naming a number with no id key: clean it up too.
                units[value.id] = _Unit(value.labels, h, named.revision)
        return units

    async def _release(self, number: int, unit: _Unit) -> None:
        n = IdentityId(number)
        try:
            steps = al.release(
                n, unit.labels, unit.label_hash, labels_revision=unit.labels_revision
            )
            result = await drive(steps, self.store)
            outcome = result.outcome.value
            if result.outcome in (al.Outcome.IN_USE, al.Outcome.CHANGED):
                self.collector.restart(number, self.clock())
            else:
                self._released.add(number)
            log.info(
                "identity %d (%s) unused for %.0fs: %s",
                number,
                _describe(unit.labels),
                self.config.identity_gc_grace_seconds,
                outcome,
                extra={"identity": number, "outcome": outcome},
            )
        except Exception as e:
            outcome = "error"
            self.collector.restart(number, self.clock())
            log.error("releasing identity %d failed: %s", number, e, extra={"identity": number})
        finally:
            self._releasing.pop(number, None)
        self.metrics.gc_releases.labels(outcome).inc()
        self._dirty.set()

    async def _recheck(self, number: IdentityId) -> bool:
        """The release's last question: is `number` unused, by weir-k8s as of now?"""
        last = await self._k8s_last_revision()
        deadline = self.clock() + 30
        while self.k8s_cursor.applied < last:
            if self.clock() > deadline:
                raise TimeoutError(f"weir-k8s not applied up to revision {last} after 30s")
            await asyncio.sleep(0.02)
        needs = core.needs(self.view)
        return number not in core.in_use(self.index, needs.label_sets)

    def _conflict(self, key: str, op: str) -> None:
        self.metrics.cas_conflicts.labels(key, op).inc()

    # --- reporting ---------------------------------------------------------------------------

    def _report(self, problems: list[core.Problem], *, only: bool = True) -> None:
        """Log and count each problem once while it lasts (not on every pass)."""
        current = set(problems)
        for p in sorted(current - self._reported, key=lambda p: (p.key, p.reason)):
            self.metrics.rejected.labels(p.reason).inc()
            log.error(
                "skipping %s: %s",
                p.key,
                p.detail,
                extra={"key": p.key, "reason": p.reason},
            )
        if only:
            self._reported = current
        else:
            self._reported |= current

    def _gauges(self, needs: core.Needs) -> None:
        kinds = {"reserved": 0, "pod": 0, "cidr": 0}
        for number, _ in self.index:
            if number < CLUSTER_MIN:
                kinds["reserved"] += 1
            else:
                kinds["cidr" if is_cidr_identity(number) else "pod"] += 1
        for kind, count in kinds.items():
            self.metrics.identities.labels(kind).set(count)
        for ip_kind, count in self.mirror.count().items():
            self.metrics.ipcache_entries.labels(ip_kind.value).set(count)
        self.metrics.waiting_pods.set(len(needs.waiting))

    def _summary(self) -> str:
        counts = self.mirror.count()
        return (
            f"{len(self.view.pods)} pods, {len(self.numbers)} label sets numbered, "
            f"{sum(counts.values())} ipcache entries ({counts[IPCacheKind.POD]} pod)"
        )


def _number(key: str) -> int:
    try:
        return int(key.split(".", 1)[1])
    except (IndexError, ValueError):
        return -1


def _causes_of(entry: IPCacheEntry | None) -> tuple[str, ...]:
    """The weir-k8s key an entry being deleted came from."""
    if entry is None:
        return ()
    if entry.kind is IPCacheKind.POD:
        return (catalog.k8s_key("pod", entry.pod_namespace, entry.pod_name),)
    if entry.kind is IPCacheKind.NODE:
        return (catalog.k8s_key("node", "", entry.node),)
    return ()


def _entry_owner(entry: IPCacheEntry) -> str:
    if entry.kind is IPCacheKind.POD:
        return f"pod {entry.pod_namespace}/{entry.pod_name}"
    if entry.kind is IPCacheKind.NODE:
        return f"node {entry.node}"
    return entry.kind.value


def _describe(labels: IdentityLabels) -> str:
    if labels.reserved:
        return f"reserved:{labels.reserved}"
    if labels.cidr:
        return f"cidr:{labels.cidr}"
    pod = ",".join(f"{k}={v}" for k, v in labels.pod_labels.items())
    return f"namespace {labels.namespace} {{{pod}}}"
