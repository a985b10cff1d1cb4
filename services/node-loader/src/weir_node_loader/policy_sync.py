"""KV weir-ipcache and weir-policy, realized: the node's ipcache and every endpoint's policy.

`PolicySync` watches all of weir-ipcache and this node's keys of weir-policy (`<node>.>`), each
with a WatchCursor, and keeps the latest values. Once both watches have caught up, and after
every change, one pass (under the datapath lock the endpoint manager also holds) makes the maps
agree with them — level-triggered, a diff against what the maps hold, never a flush:

- ipcache: KV's prefixes, this node's own addresses as HOST (ipcache.py), both tables;
- policy: for each registered endpoint whose pod has a policy in KV, the compiled entries
  (policy.py); a changed endpoint is rewritten by a slot flip — the new policy into the inactive
  slot, the config switched in one update, and the old slot cleared a grace period later;
- an endpoint whose policy disappears from KV keeps what the maps hold (a pod is never left
  unprotected by a missing key; its policy goes when the endpoint goes).

A registration (CNI ADD) waits here until KV holds the pod's policy for the same pod uid
(`wait_for`), and writes it before the endpoint's programs see a packet (`realize`). The
cursors are marked applied only after a pass has put what they delivered into the maps, so a
convergence barrier over them means "in the kernel".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from weir.bus import CaughtUp, TypedKv, WatchCursor
from weir.models import EndpointPolicy, EndpointRecord, IPCacheEntry

from weir_node_loader import ipcache, policy
from weir_node_loader.kernel import KernelError, PolicyKernel
from weir_node_loader.manager import PolicyUnavailable, Runner
from weir_node_loader.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger("weir.node_loader.policy")

# How long an old slot stays after the switch: far longer than any program run that read the
# old config (microseconds), so no packet ever looks up a half-cleared slot.
FLIP_GRACE_SECONDS = 0.01
RETRY_SECONDS = 1.0


@dataclass
class PassReport:
    ipcache_ops: int = 0
    flipped: int = 0
    removed: int = 0
    kept: int = 0  # endpoints with no policy in KV: what the maps hold stays

    def __str__(self) -> str:
        return (
            f"ipcache {self.ipcache_ops} ops, {self.flipped} endpoints rewritten, "
            f"{self.removed} removed, {self.kept} without policy in KV"
        )


class PolicySync:
    def __init__(
        self,
        *,
        node: str,
        kernel: PolicyKernel,
        run: Runner,
        lock: asyncio.Lock,
        endpoints: Callable[[], list[EndpointRecord]],
        metrics: Metrics,
        host_addresses: Iterable[str] = (),
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.node = node
        self._kernel = kernel
        self._run = run
        self._lock = lock
        self._endpoints = endpoints
        self._metrics = metrics
        self._host_addresses = tuple(host_addresses)
        self._ready = ready
        self.ipcache_cursor = WatchCursor("weir-ipcache")
        self.policy_cursor = WatchCursor("weir-policy")
        self.ipcache_entries: dict[str, IPCacheEntry] = {}  # KV key -> entry
        self.policies: dict[tuple[str, str], EndpointPolicy] = {}  # (namespace, pod)
        self._policy_keys: dict[str, tuple[str, str]] = {}
        self._uids: dict[str, str] = {}  # container id -> pod uid its registration named
        self._compiled: dict[tuple[str, str], tuple[EndpointPolicy, policy.Compiled]] = {}
        self._ipcache_held: ipcache.Tables | None = None  # what the maps hold (after a pass)
        self._lpm: ipcache.Lpm | None = None
        self.cookie_names: dict[int, str] = {}  # every cookie seen, for events about old ones
        self._seen: dict[WatchCursor, int] = {}
        self._caught_up: set[str] = set()
        self.synced = asyncio.Event()
        self._changed = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._passing = False

    # --- watching -----------------------------------------------------------------------------

    async def watch_ipcache(self, kv: TypedKv[IPCacheEntry]) -> None:
        async for item in kv.watch(">", self.ipcache_cursor):
            if isinstance(item, CaughtUp):
                await self._caught(self.ipcache_cursor)
                continue
            if isinstance(item.value, IPCacheEntry):
                self.ipcache_entries[item.key] = item.value
            else:
                self.ipcache_entries.pop(item.key, None)
            self._lpm = None
            await self._note(self.ipcache_cursor, item.revision)

    async def watch_policy(self, kv: TypedKv[EndpointPolicy]) -> None:
        prefix = f"{self.node}."
        async for item in kv.watch(f"{self.node}.>", self.policy_cursor):
            if isinstance(item, CaughtUp):
                await self._caught(self.policy_cursor)
                continue
            old = self._policy_keys.pop(item.key, None)
            if old is not None:
                self.policies.pop(old, None)
            value = item.value
            if isinstance(value, EndpointPolicy) and item.key.startswith(prefix):
                pod = (value.pod_namespace, value.pod_name)
                self.policies[pod] = value
                self._policy_keys[item.key] = pod
                self.cookie_names.update(value.cookies)
            await self._note(self.policy_cursor, item.revision)
            async with self._arrived:
                self._arrived.notify_all()

    async def _note(self, cursor: WatchCursor, revision: int) -> None:
        self._seen[cursor] = max(self._seen.get(cursor, 0), revision)
        self._changed.set()

    async def _caught(self, cursor: WatchCursor) -> None:
        self._caught_up.add(cursor.name)
        if len(self._caught_up) == 2:
            self.synced.set()
            self._changed.set()
        async with self._arrived:
            self._arrived.notify_all()

    # --- what an endpoint gets ----------------------------------------------------------------

    def policy_for(self, record: EndpointRecord) -> EndpointPolicy | None:
        """The pod's policy from KV, unless it is for another pod of the same name (another
        uid than the registration named)."""
        found = self.policies.get((record.pod_namespace, record.pod_name))
        if found is None:
            return None
        uid = self._uids.get(record.container_id, "")
        if uid and found.pod_uid and found.pod_uid != uid:
            return None
        return found

    def _compile(self, pol: EndpointPolicy) -> policy.Compiled:
        pod = (pol.pod_namespace, pol.pod_name)
        cached = self._compiled.get(pod)
        if cached is not None and cached[0] is pol:
            return cached[1]
        compiled = policy.compile_policy(pol)
        for problem in compiled.skipped:
            log.warning("policy of %s/%s: skipped %s", *pod, problem)
            self._metrics.policy_entries_skipped.inc()
        self._compiled[pod] = (pol, compiled)
        return compiled

    async def wait_for(self, namespace: str, name: str, uid: str, seconds: float) -> EndpointPolicy:
        """The pod's policy once KV holds it (for `uid`, when given); PolicyUnavailable when
        it has not arrived within `seconds`."""

        def present() -> bool:
            found = self.policies.get((namespace, name))
            return found is not None and (not uid or not found.pod_uid or found.pod_uid == uid)

        try:
            async with self._arrived:
                await asyncio.wait_for(self._arrived.wait_for(present), seconds)
        except TimeoutError:
            what = f"{namespace}/{name}" + (f" (uid {uid})" if uid else "")
            raise PolicyUnavailable(
                f"no policy for {what} in weir-policy after {seconds:g}s: the pod's "
                "datapath would be unprotected; try again later"
            ) from None
        return self.policies[(namespace, name)]

    def remember(self, record: EndpointRecord, uid: str) -> None:
        """The pod uid a registration named (its policy must carry the same)."""
        if uid:
            self._uids[record.container_id] = uid

    def forget(self, container_id: str) -> None:
        self._uids.pop(container_id, None)

    async def realize(self, record: EndpointRecord) -> bool:
        """Write `record`'s policy into the maps now, if KV has it (the caller holds the lock).
        True when the endpoint has a policy in the maps afterwards."""
        pol = self.policy_for(record)
        held = (await self._k(self._kernel.policies)).get(record.host_ifindex)
        if pol is None:
            return held is not None and held.config is not None
        flip = policy.plan(self._compile(pol), held)
        if flip is not None:
            await self._flip(record.host_ifindex, flip)
            if flip.delete_after:
                await asyncio.sleep(FLIP_GRACE_SECONDS)
                await self._k(
                    functools.partial(self._kernel.finish_policy, record.host_ifindex, flip)
                )
        return True

    # --- the passes ---------------------------------------------------------------------------

    async def _k(self, fn: Callable[[], T]) -> T:
        return await self._run(fn)

    async def _flip(self, ifindex: int, flip: policy.Flip) -> None:
        await self._k(functools.partial(self._kernel.flip_policy, ifindex, flip))
        self._metrics.policy_flips.inc()

    @property
    def busy(self) -> str:
        """What a convergence barrier must still wait for ("" when nothing)."""
        if not self.synced.is_set():
            return "weir-ipcache and weir-policy: reading"
        if self._passing or self._changed.is_set():
            return "writing ipcache and policy into the maps"
        return ""

    def remote_entry(self, address: str) -> IPCacheEntry | None:
        """The KV ipcache entry covering `address` (longest prefix), for naming."""
        if self._lpm is None:
            self._lpm = ipcache.Lpm(self.ipcache_entries)
        key = self._lpm.match(address)
        return self.ipcache_entries.get(key) if key is not None else None

    async def apply(self, *, reread: bool = False) -> PassReport:
        """One full pass: ipcache and every endpoint's policy, diffed against the maps."""
        report = PassReport()
        async with self._lock:
            self._passing = True
            try:
                await self._apply_ipcache(report, reread)
                await self._apply_policies(report, reread)
            finally:
                self._passing = False
        return report

    async def _apply_ipcache(self, report: PassReport, reread: bool) -> None:
        tables, problems = ipcache.desired(
            self.ipcache_entries.values(), self.node, self._host_addresses
        )
        for problem in problems:
            log.warning("ipcache: %s", problem)
        if self._ipcache_held is None or reread:
            self._ipcache_held = await self._k(self._kernel.ipcache)
        main = ipcache.diff(tables.main, self._ipcache_held.main)
        cidr = ipcache.diff(tables.cidr, self._ipcache_held.cidr)
        if main or cidr:
            report.ipcache_ops = await self._k(
                functools.partial(self._kernel.write_ipcache, main, cidr)
            )
            self._metrics.ipcache_writes.inc(report.ipcache_ops)
            log.info(
                "ipcache: %d written, %d deleted (%d prefixes)",
                len(main.put) + len(cidr.put),
                len(main.delete) + len(cidr.delete),
                len(tables.main),
            )
        self._ipcache_held = tables
        self._metrics.ipcache_prefixes.set(len(tables.main))

    async def _apply_policies(self, report: PassReport, reread: bool) -> None:
        held = await self._k(functools.partial(self._kernel.policies, reread))
        endpoints = self._endpoints()
        flips: list[tuple[int, policy.Flip]] = []
        for record in endpoints:
            pol = self.policy_for(record)
            if pol is None:
                report.kept += 1
                continue
            flip = policy.plan(self._compile(pol), held.get(record.host_ifindex))
            if flip is None:
                continue
            await self._flip(record.host_ifindex, flip)
            flips.append((record.host_ifindex, flip))
            log.info(
                "policy of %s/%s (ifindex %d) written to slot %d: %d entries",
                record.pod_namespace,
                record.pod_name,
                record.host_ifindex,
                flip.slot,
                len(self._compile(pol).rows),
            )
        live = {r.host_ifindex for r in endpoints}
        for ifindex in sorted(set(held) - live):
            if await self._k(functools.partial(self._kernel.remove_policy, ifindex)):
                report.removed += 1
                log.info("removed the policy of ifindex %d: no endpoint there", ifindex)
        if any(f.delete_after for _, f in flips):
            await asyncio.sleep(FLIP_GRACE_SECONDS)
        for ifindex, flip in flips:
            if flip.delete_after:
                await self._k(functools.partial(self._kernel.finish_policy, ifindex, flip))
        report.flipped = sum(1 for _, f in flips if f.flips)

    async def run(self) -> None:
        """Apply after the initial snapshots and after every change; a failed pass is retried."""
        await self.synced.wait()
        while True:
            await self._changed.wait()
            if not self._ready():
                await asyncio.sleep(0.05)
                continue
            self._changed.clear()
            seen = dict(self._seen)
            started = time.monotonic()
            try:
                report = await self.apply()
            except KernelError as e:
                self._metrics.datapath_errors.labels(e.reason).inc()
                log.error("policy pass failed, retrying: %s", e)
                await asyncio.sleep(RETRY_SECONDS)
                self._changed.set()
                continue
            for cursor, revision in seen.items():
                cursor.mark_applied(revision)
            self._metrics.policy_passes.inc()
            if report.ipcache_ops or report.flipped or report.removed:
                log.info("policy pass in %.1f ms: %s", 1000 * (time.monotonic() - started), report)
