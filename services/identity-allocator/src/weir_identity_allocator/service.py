"""The identity-allocator process: numeric identities for label sets, and the ipcache.

Composition root. Reads KV weir-k8s (namespaces, pods, nodes, network policies); writes KV
weir-identities (the only writer; by compare-and-set, so several replicas agree) and KV
weir-ipcache (every replica plans the same entries from the same weir-k8s, so their writes
agree). Ready once all three buckets are replayed and the first pass has run; answers the
convergence barrier once every weir-k8s change seen has been acted on and acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from weir import catalog, runtime

from .config import AllocatorConfig
from .metrics import Metrics
from .reconciler import IdentityAllocator

log = logging.getLogger("weir.identity_allocator")


async def run(rt: runtime.Runtime[AllocatorConfig]) -> None:
    cfg = rt.config
    cfg.check()
    rt.health.set("synced", False, "starting")
    k8s = await rt.bucket(catalog.K8S)
    identities = await rt.bucket(catalog.IDENTITIES)
    ipcache = await rt.bucket(catalog.IPCACHE)

    async def k8s_last_revision() -> int:
        info = await rt.js.stream_info(f"KV_{catalog.K8S.name}")
        return int(info.state.last_seq)

    allocator = IdentityAllocator(
        config=cfg,
        k8s=k8s,
        identities=identities,
        ipcache_kv=ipcache,
        k8s_last_revision=k8s_last_revision,
        metrics=Metrics(rt.registry),
        tracer=rt.tracer,
        on_state=lambda ok, detail: rt.health.set("synced", ok, detail),
    )
    await rt.serve_barrier(_barrier(allocator, k8s_last_revision))
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(allocator.watch_identities(), name="watch-identities")
        tasks.create_task(allocator.watch_ipcache(), name="watch-ipcache")
        tasks.create_task(allocator.watch_k8s(), name="watch-k8s")
        tasks.create_task(allocator.run(), name="reconcile")


def _barrier(
    allocator: IdentityAllocator, last_revision: Callable[[], Awaitable[int]]
) -> runtime.BarrierBegin:
    """kv_barrier, pinned to weir-k8s as it was when asked: a cursor's own delivered count can
    lag a message nats-py has received but not yet handed to the watch, so the barrier also
    waits until the watch has applied the bucket's last revision at the time of the request."""
    caught_up = runtime.kv_barrier(allocator.k8s_cursor, busy=allocator.busy)

    async def begin() -> runtime.BarrierCheck:
        target = await last_revision()
        check = await caught_up()

        async def pinned() -> tuple[bool, str]:
            applied = allocator.k8s_cursor.applied
            if applied < target:
                return False, f"weir-k8s applied up to revision {applied}, asked at {target}"
            return await check()

        return pinned

    return begin


def main() -> None:
    raise SystemExit(
        runtime.run(
            "identity-allocator",
            AllocatorConfig,
            run,
            description="Weir identity-allocator: numeric identities for label sets, the ipcache",
        )
    )
