"""Endpoints, realized: registration, removal and reconciliation over the kernel and KV.

`EndpointManager` turns the decisions of endpoints.py into calls on the `Kernel` (run on the
kernel thread through `run`) and on an `EndpointStore` (KV weir-endpoints). One lock orders
every change (the policy sync shares it), so a registration, a removal, a reconcile pass and a
policy pass never interleave. The order of a registration is the contract with the CNI plugin:
wait until KV weir-policy holds the pod's policy (same pod uid), then its policy entries, the
endpoint's map entries, both tc hooks, the KV key — and only then the answer, so a pod never
runs un-programmed or unprotected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from weir.endpoint_api import EndpointRequest
from weir.models import EndpointRecord

from weir_node_loader.endpoints import (
    Ensure,
    InvalidRequest,
    Purge,
    Registry,
    admission_links,
    admit,
    plan_reconcile,
    record_from_request,
    validate_container_id,
)
from weir_node_loader.kernel import HookOutcome, Kernel, KernelError
from weir_node_loader.maps import Counters
from weir_node_loader.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger("weir.node_loader.endpoints")

__all__ = [
    "EndpointManager",
    "EndpointStore",
    "InvalidRequest",
    "NotReady",
    "PolicyGate",
    "PolicyUnavailable",
    "StoreUnavailable",
]


class EndpointStore(Protocol):
    """This node's keys in KV weir-endpoints."""

    async def snapshot(self) -> dict[str, EndpointRecord | None]:
        """container id -> record (None: the value could not be decoded)."""
        ...

    async def put(self, record: EndpointRecord) -> None: ...

    async def delete(self, container_id: str) -> None: ...


class Runner(Protocol):
    """Runs a blocking kernel call somewhere it may block (the kernel thread)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class NotReady(Exception):
    """Registrations wait until the datapath is loaded and the first reconcile is done."""


class PolicyUnavailable(Exception):
    """The pod's policy is not in KV (or not for its uid): registering it would leave it
    unprotected. Retry later."""


class PolicyGate(Protocol):
    """The policy side of an endpoint (policy_sync.PolicySync)."""

    async def wait_for(self, namespace: str, name: str, uid: str, seconds: float) -> object:
        """Return once KV holds the pod's policy; PolicyUnavailable after `seconds`."""
        ...

    def remember(self, record: EndpointRecord, uid: str) -> None: ...

    def forget(self, container_id: str) -> None: ...

    async def realize(self, record: EndpointRecord) -> bool:
        """Write the endpoint's policy (lock held); True when the maps hold one after."""
        ...


class StoreUnavailable(Exception):
    """The datapath is done, but KV weir-endpoints could not be written; retry."""


@dataclass
class ReconcileReport:
    adopted: int = 0
    repaired: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.adopted} adopted, {self.repaired} repaired, {self.removed} removed"
        return text + (f", {len(self.errors)} failed" if self.errors else "")


async def _inline(fn: Callable[[], T]) -> T:
    return fn()


class EndpointManager:
    def __init__(
        self,
        *,
        node: str,
        kernel: Kernel,
        store: EndpointStore,
        metrics: Metrics,
        run: Runner | None = None,
        lock: asyncio.Lock | None = None,
        policy: PolicyGate | None = None,
        require_policy: bool = True,
        policy_wait_seconds: float = 10.0,
    ) -> None:
        self.node = node
        self.registry = Registry()
        self.ready = False
        self.policy = policy
        self.require_policy = require_policy
        self.policy_wait_seconds = policy_wait_seconds
        self._kernel = kernel
        self._store = store
        self._metrics = metrics
        self._run: Runner = run or _inline
        self._lock = lock or asyncio.Lock()
        self._kv_unsynced: set[str] = set()  # realized, but the KV put failed
        self._tombstones: set[str] = set()  # removed, but the KV delete failed

    async def _k(self, fn: Callable[[], T]) -> T:
        return await self._run(fn)

    # --- registration -------------------------------------------------------------------------

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def put(self, request: EndpointRequest) -> EndpointRecord:
        """Realize a registration (idempotent). InvalidRequest, NotReady, PolicyUnavailable,
        KernelError or StoreUnavailable when it cannot be."""
        record = record_from_request(self.node, request)
        if not self.ready:
            raise NotReady("the datapath is not loaded yet")
        if self.policy is not None and self.require_policy:
            started = time.monotonic()
            try:
                await self.policy.wait_for(
                    record.pod_namespace,
                    record.pod_name,
                    request.pod_uid,
                    self.policy_wait_seconds,
                )
            except PolicyUnavailable:
                self._metrics.policy_waits.labels("timeout").inc()
                raise
            self._metrics.policy_waits.labels("arrived").inc()
            self._metrics.policy_wait_seconds.observe(time.monotonic() - started)
        async with self._lock:
            if not self.ready:
                raise NotReady("the datapath is not loaded yet")
            wanted = admission_links(self.registry, record)
            links = await self._k(lambda: self._kernel.links(wanted))
            admission = admit(self.registry, record, links)
            for old in admission.evict:
                log.info(
                    "evicting %s from ifindex %d for %s",
                    old.container_id,
                    old.host_ifindex,
                    record.container_id,
                )
                await self._remove(old)
            new = self.registry.get(record.container_id) is None
            try:
                if self.policy is not None:
                    self.policy.remember(record, request.pod_uid)
                    protected = await self.policy.realize(record)
                    if self.require_policy and not protected:
                        raise PolicyUnavailable(
                            f"the policy of {record.pod_namespace}/{record.pod_name} left "
                            "weir-policy meanwhile; try again later"
                        )
                await self._realize(record)
            except (KernelError, PolicyUnavailable):
                if new:  # leave no half-programmed veth behind a failed ADD
                    await self._rollback(record)
                raise
            self.registry.set(record)
            unsynced = record.container_id in self._kv_unsynced
            if not admission.unchanged or unsynced:
                await self._publish(record)
            outcome = "unchanged" if admission.unchanged else "created" if new else "updated"
            self._metrics.registrations.labels(outcome).inc()
            self._metrics.endpoints.set(len(self.registry))
            log.info(
                "endpoint %s %s: %s/%s %s on %s (ifindex %d)",
                record.container_id,
                outcome,
                record.pod_namespace,
                record.pod_name,
                record.ip,
                record.host_ifname,
                record.host_ifindex,
                extra={"container_id": record.container_id, "outcome": outcome},
            )
            return record

    async def delete(self, container_id: str) -> bool:
        """Remove an endpoint and everything it added; False when it was not registered."""
        validate_container_id(container_id)
        async with self._lock:
            if not self.ready:
                raise NotReady("the datapath is not loaded yet")
            record = self.registry.get(container_id)
            if record is None:
                if container_id in self._tombstones:
                    await self._unpublish(container_id)
                return False
            await self._remove(record)
            if self.policy is not None:
                self.policy.forget(container_id)
            self._metrics.deletions.inc()
            self._metrics.endpoints.set(len(self.registry))
            log.info("endpoint %s deleted", container_id, extra={"container_id": container_id})
            return True

    def get(self, container_id: str) -> EndpointRecord | None:
        return self.registry.get(container_id)

    async def counters(self, ifindex: int | None = None) -> dict[int, Counters]:
        """Every endpoint's counters, or one endpoint's (by host veth ifindex)."""
        return await self._k(lambda: self._kernel.counters(ifindex))

    # --- the steps ----------------------------------------------------------------------------

    async def _realize(self, record: EndpointRecord) -> dict[str, HookOutcome]:
        """Map entries, then both hooks (the program finds its entries from its first packet)."""
        try:
            changed = await self._k(lambda: self._kernel.write_endpoint(record))
            outcomes = await self._k(lambda: self._kernel.attach(record.host_ifindex))
        except KernelError as e:
            self._metrics.datapath_errors.labels(e.reason).inc()
            raise
        for direction, outcome in outcomes.items():
            self._metrics.hooks.labels(direction.name.lower(), outcome.value).inc()
        if changed:
            log.debug("wrote map entries of %s", record.container_id)
        return {d.name.lower(): o for d, o in outcomes.items()}

    async def _rollback(self, record: EndpointRecord) -> None:
        try:
            await self._k(lambda: self._kernel.remove_endpoint(record.host_ifindex))
        except KernelError as e:
            self._metrics.datapath_errors.labels(e.reason).inc()
            log.error("rollback of %s failed: %s", record.container_id, e)

    async def _remove(self, record: EndpointRecord) -> None:
        try:
            await self._k(lambda: self._kernel.remove_endpoint(record.host_ifindex))
        except KernelError as e:
            self._metrics.datapath_errors.labels(e.reason).inc()
            raise
        self.registry.remove(record.container_id)
        self._kv_unsynced.discard(record.container_id)
        await self._unpublish(record.container_id)

    async def _publish(self, record: EndpointRecord) -> None:
        try:
            await self._store.put(record)
        except Exception as e:
            self._kv_unsynced.add(record.container_id)
            self._metrics.datapath_errors.labels("kv").inc()
            raise StoreUnavailable(
                f"endpoint {record.container_id} is programmed, but KV weir-endpoints could "
                f"not be written: {e}"
            ) from e
        self._kv_unsynced.discard(record.container_id)
        self._tombstones.discard(record.container_id)

    async def _unpublish(self, container_id: str) -> None:
        try:
            await self._store.delete(container_id)
        except Exception as e:
            self._tombstones.add(container_id)
            self._metrics.datapath_errors.labels("kv").inc()
            raise StoreUnavailable(
                f"endpoint {container_id} is removed from the datapath, but its KV key could "
                f"not be deleted: {e}"
            ) from e
        self._tombstones.discard(container_id)

    # --- reconciliation -----------------------------------------------------------------------

    async def reconcile(self) -> ReconcileReport:
        """One level-triggered pass over KV, veths and pinned maps (at start, then periodically).
        Never flushes: what is intact is adopted as it is, counters and filters included."""
        async with self._lock:
            kv = await self._store.snapshot()
            for cid in self._tombstones:
                if cid in kv:
                    kv[cid] = None  # deleted by a DEL whose KV delete failed: purge, never revive
            links = await self._k(self._kernel.links)
            realized = await self._k(self._kernel.realized)
            hooked = await self._k(self._kernel.hooked)
            actions = plan_reconcile(kv=kv, links=links, realized=realized, hooked=hooked)
            report = ReconcileReport()
            kept: list[EndpointRecord] = []
            for action in actions:
                try:
                    if isinstance(action, Purge):
                        await self._purge(action)
                        report.removed += 1
                        self._metrics.reconcile.labels("removed").inc()
                    else:
                        adopted = await self._ensure(action)
                        kept.append(action.record)
                        kind = "adopted" if adopted else "repaired"
                        setattr(report, kind, getattr(report, kind) + 1)
                        self._metrics.reconcile.labels(kind).inc()
                except (KernelError, StoreUnavailable) as e:
                    report.errors.append(str(e))
                    log.error("reconcile: %s", e)
                    if isinstance(action, Ensure):
                        kept.append(action.record)  # still ours; the next pass retries
            self.registry.replace_all(kept)
            self._metrics.endpoints.set(len(self.registry))
            self.ready = True
            return report

    async def _purge(self, action: Purge) -> None:
        log.info(
            "removing stale endpoint state (%s): ifindex %s, KV keys %s",
            action.reason,
            action.ifindex,
            list(action.container_ids),
        )
        if action.ifindex is not None:
            ifindex = action.ifindex
            try:
                await self._k(lambda: self._kernel.remove_endpoint(ifindex))
            except KernelError as e:
                self._metrics.datapath_errors.labels(e.reason).inc()
                raise
        for cid in action.container_ids:
            self._kv_unsynced.discard(cid)
            await self._unpublish(cid)

    async def _ensure(self, action: Ensure) -> bool:
        """Realize one endpoint; True when nothing had to change (a re-adoption)."""
        record = action.record
        if self.policy is not None:
            await self.policy.realize(record)  # before the hooks: programs find it at once
        outcomes = await self._realize(record)
        replaced = [d for d, o in outcomes.items() if o != HookOutcome.ADOPTED]
        if action.write_kv or record.container_id in self._kv_unsynced:
            await self._publish(record)
        if action.intact and not replaced:
            log.info("re-adopted endpoint %s intact", record.container_id)
            return True
        problems = list(action.problems) + [f"{d} hook {outcomes[d]}" for d in replaced]
        log.info("repaired endpoint %s: %s", record.container_id, "; ".join(problems))
        return False
