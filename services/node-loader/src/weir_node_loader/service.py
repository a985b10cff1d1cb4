"""The node-loader process: one per node, the only Weir process that touches the kernel.

Composition root. In order: the endpoint API's socket (answering 503 until ready), the pins
(checked before anything trusts them), the programs (compiled once), the node's network
namespace, the datapath's settings, the ipcache and policy watches (until their snapshots are
read), then a reconcile of KV, veths and pins that re-adopts what a previous run left —
programs stay attached, conntrack, counters and policy stay in the maps across a restart. Then,
concurrently: the policy sync (KV weir-ipcache and weir-policy into the maps), the Nodes from KV
weir-k8s (CNI conflist, routes, taint), the taint remover, verdict events to weir.flows.<node>,
the conntrack GC, the periodic resync and the convergence barrier. Every blocking kernel call
runs on one dedicated thread (the ring buffer has its own).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from weir import catalog, runtime
from weir.bus import WatchCursor
from weir.cni_config import GATEWAY, PluginConfig
from weir.kube import api_client
from weir.models import EndpointRecord

from weir_node_loader import maps, pins, program
from weir_node_loader.api import EndpointApi
from weir_node_loader.config import NodeLoaderConfig
from weir_node_loader.conntrack import Timeouts
from weir_node_loader.datapath_metrics import DatapathCollector
from weir_node_loader.events import EventReader, FlowPublisher
from weir_node_loader.kernel import KernelError
from weir_node_loader.linux import LinuxKernel
from weir_node_loader.manager import EndpointManager
from weir_node_loader.metrics import Metrics
from weir_node_loader.nodes import NodeSync, NodeWatcher
from weir_node_loader.policy_sync import PolicySync
from weir_node_loader.store import KvEndpointStore
from weir_node_loader.taint import TaintRemover

T = TypeVar("T")
log = logging.getLogger("weir.node_loader")
CHECKS = (
    "socket",
    "pins",
    "program",
    "netns",
    "policy",
    "endpoints",
    "cni-config",
    "routes",
    "taint",
)
# How long start waits for the ipcache and policy snapshots before reconciling endpoints.
SNAPSHOT_WAIT_SECONDS = 30.0


class KernelThread:
    """Runs blocking kernel work (BCC, bpf(2), pyroute2) on one thread, in call order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weir-kernel")

    def __call__(self, fn: Callable[[], T], /) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class DatapathError(Exception):
    """The datapath cannot be loaded; node-loader exits rather than run without it."""


async def load_datapath(
    cfg: NodeLoaderConfig, kernel_thread: KernelThread, rt: runtime.Runtime[NodeLoaderConfig]
) -> LinuxKernel:
    health = rt.health
    pin_dir = cfg.pin_dir
    if pins.bpffs_mount(Path(cfg.bpf_root)) is None:
        detail = f"{cfg.bpf_root} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)"
        health.set("pins", False, detail)
        raise DatapathError(detail)
    try:
        await kernel_thread(functools.partial(pin_dir.mkdir, parents=True, exist_ok=True))
        existed = await kernel_thread(functools.partial(pins.check_existing, pin_dir, maps.SPECS))
    except (pins.PinMismatch, OSError) as e:
        health.set("pins", False, str(e))
        log.critical("refusing the pinned maps: %s", e)
        raise DatapathError(str(e)) from e
    try:
        bpf_dir = program.find_bpf_dir(cfg.bpf_dir)
        loaded = await kernel_thread(functools.partial(program.compile_program, bpf_dir, pin_dir))
    except program.ProgramError as e:
        health.set("program", False, str(e))
        raise DatapathError(str(e)) from e
    reopened = sorted(name for name, was in existed.items() if was)
    created = sorted(name for name, was in existed.items() if not was)
    health.set(
        "pins", True, f"{pin_dir}: re-opened {reopened or 'none'}, created {created or 'none'}"
    )
    tags = ", ".join(f"{p.name} tag {p.tag}" for p in loaded.progs.values())
    health.set("program", True, f"lxc.c sha256 {loaded.source_sha256[:12]}: {tags}")
    kernel = await kernel_thread(
        functools.partial(
            LinuxKernel.open,
            netns=cfg.netns,
            pin_dir=pin_dir,
            program=loaded,
            node=cfg.node_name,
        )
    )
    health.set("netns", True, f"network namespace {cfg.netns or '(own)'}")
    return kernel


def settings_of(cfg: NodeLoaderConfig) -> maps.Settings:
    flags = maps.SettingsFlag.EVENTS_UNENFORCED if cfg.events_unenforced else 0
    return maps.Settings(
        events_per_sec=cfg.events_per_second, events_burst=cfg.events_burst, flags=flags
    )


def timeouts_of(cfg: NodeLoaderConfig) -> Timeouts:
    return Timeouts(
        tcp_established=cfg.ct_tcp_timeout,
        tcp_opening=cfg.ct_tcp_opening_timeout,
        tcp_closing=cfg.ct_tcp_closing_timeout,
        other=cfg.ct_other_timeout,
    )


async def run(rt: runtime.Runtime[NodeLoaderConfig]) -> None:
    cfg = rt.config
    cfg.check()
    for check in CHECKS:
        rt.health.set(check, False, "starting")
    metrics = Metrics(rt.registry)
    api = EndpointApi(cfg.node_name)
    kernel_thread = KernelThread()
    kernel: LinuxKernel | None = None
    reader: EventReader | None = None
    try:
        await api.start(Path(cfg.socket_path))
        rt.health.set("socket", True, f"endpoint API on unix:{cfg.socket_path}")
        kernel = await load_datapath(cfg, kernel_thread, rt)
        rt.registry.register(DatapathCollector(kernel.datapath_stats))
        await kernel_thread(functools.partial(kernel.write_settings, settings_of(cfg)))
        endpoints_kv = await rt.bucket(catalog.ENDPOINTS)
        k8s_kv = await rt.bucket(catalog.K8S)
        ipcache_kv = await rt.bucket(catalog.IPCACHE)
        policy_kv = await rt.bucket(catalog.POLICY)
        lock = asyncio.Lock()
        manager = EndpointManager(
            node=cfg.node_name,
            kernel=kernel,
            store=KvEndpointStore(endpoints_kv, cfg.node_name),
            metrics=metrics,
            run=kernel_thread,
            lock=lock,
            require_policy=cfg.require_policy,
            policy_wait_seconds=cfg.policy_wait_seconds,
        )
        sync = PolicySync(
            node=cfg.node_name,
            kernel=kernel,
            run=kernel_thread,
            lock=lock,
            endpoints=manager.registry.all,
            metrics=metrics,
            host_addresses=(GATEWAY,),
            ready=lambda: manager.ready,
        )
        manager.policy = sync

        def endpoint_of(ifindex: int) -> EndpointRecord | None:
            return next((r for r in manager.registry.all() if r.host_ifindex == ifindex), None)

        publisher = FlowPublisher(
            node=cfg.node_name,
            publish=rt.nc.publish,
            sync=sync,
            endpoint_of=endpoint_of,
            metrics=metrics,
            backlog=cfg.flow_backlog,
        )
        publisher.attach(asyncio.get_running_loop())
        reader = EventReader(kernel.program.bpf, publisher.deliver)

        def on_state(check: str, ok: bool, detail: str) -> None:
            rt.health.set(check, ok, detail)

        remover = TaintRemover(
            node=cfg.node_name,
            connect=functools.partial(api_client, cfg.kubeconfig),
            on_state=functools.partial(on_state, "taint"),
        )
        node_sync = NodeSync(
            node=cfg.node_name,
            kernel=kernel,
            run=kernel_thread,
            plugin=lambda subnet: PluginConfig(
                node_loader_socket=cfg.socket_path,
                subnet=subnet,
                ipam_data_dir=cfg.ipam_dir,
                mtu=cfg.mtu,
            ),
            conf_dir=Path(cfg.cni_conf_dir),
            metrics=metrics,
            on_state=on_state,
            taint_remover=remover,
        )
        k8s_cursor = WatchCursor("weir-k8s")
        watcher = NodeWatcher(k8s_kv, node_sync.apply, cursor=k8s_cursor)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(sync.watch_ipcache(ipcache_kv), name="ipcache")
            tasks.create_task(sync.watch_policy(policy_kv), name="policy")
            try:
                await asyncio.wait_for(sync.synced.wait(), SNAPSHOT_WAIT_SECONDS)
            except TimeoutError:
                log.warning(
                    "weir-ipcache and weir-policy not read in %.0fs: reconciling endpoints "
                    "with the policy the maps hold",
                    SNAPSHOT_WAIT_SECONDS,
                )
            api.manager = manager
            report = await manager.reconcile()
            log.info("endpoints at start: %s", report)
            rt.health.set("endpoints", True, f"reconciled at start: {report}")
            tasks.create_task(_policy(sync, rt), name="policy-sync")
            await rt.serve_barrier(_barrier(manager, sync, watcher, k8s_cursor), node=cfg.node_name)
            reader.start()
            tasks.create_task(publisher.run(), name="flows")
            tasks.create_task(
                _ct_gc(cfg.ct_gc_seconds, kernel, kernel_thread, timeouts_of(cfg), metrics),
                name="ct-gc",
            )
            tasks.create_task(watcher.run(), name="nodes")
            tasks.create_task(remover.run(node_sync.conflist_written.wait), name="taint")
            tasks.create_task(
                _resync(cfg.resync_seconds, manager, sync, node_sync, watcher, rt), name="resync"
            )
    finally:
        await api.stop()
        if reader is not None:
            await asyncio.to_thread(reader.stop)
        if kernel is not None:
            await kernel_thread(kernel.close)  # programs stay attached, pins stay pinned
        kernel_thread.shutdown()


async def _policy(sync: PolicySync, rt: runtime.Runtime[NodeLoaderConfig]) -> None:
    """The policy sync, with its state in /readyz once its first pass is done."""
    first = asyncio.ensure_future(sync.run())
    try:
        while not first.done():
            if sync.synced.is_set() and not sync.busy:
                rt.health.set(
                    "policy",
                    True,
                    f"{len(sync.ipcache_entries)} ipcache prefixes, "
                    f"{len(sync.policies)} endpoint policies from KV",
                )
            await asyncio.wait({first}, timeout=1.0)
        first.result()
    finally:
        first.cancel()


async def _ct_gc(
    every: float,
    kernel: LinuxKernel,
    run: KernelThread,
    timeouts: Timeouts,
    metrics: Metrics,
) -> None:
    """The conntrack GC: entries idle past their state's timeout go."""
    while True:
        await asyncio.sleep(every)
        started = time.monotonic()
        try:
            sweep = await run(functools.partial(kernel.ct_sweep, time.monotonic_ns(), timeouts))
        except KernelError as e:
            metrics.datapath_errors.labels(e.reason).inc()
            log.warning("conntrack GC failed: %s", e)
            continue
        metrics.ct_gc_runs.inc()
        metrics.ct_gc_seconds.observe(time.monotonic() - started)
        metrics.ct_entries.set(sweep.scanned - sweep.deleted)
        for (protocol, state), n in sweep.by_state.items():
            metrics.ct_gc_deleted.labels(protocol, state).inc(n)
        if sweep.deleted:
            log.info(
                "conntrack GC: %d of %d entries expired and removed",
                sweep.deleted,
                sweep.scanned,
            )


async def _resync(
    every: float,
    manager: EndpointManager,
    policy_sync: PolicySync,
    sync: NodeSync,
    watcher: NodeWatcher,
    rt: runtime.Runtime[NodeLoaderConfig],
) -> None:
    """The periodic full pass: repairs drift nobody announced (a veth deleted by hand, a map
    entry changed behind node-loader's back...)."""
    while True:
        await asyncio.sleep(every)
        try:
            report = await manager.reconcile()
        except Exception as e:  # KV unreachable: keep serving, try again next period
            log.warning("periodic reconcile failed: %s", e)
            continue
        if report.repaired or report.removed or report.errors:
            log.info("periodic reconcile: %s", report)
        rt.health.set("endpoints", True, f"reconciled periodically, last pass: {report}")
        if policy_sync.synced.is_set():
            try:
                passed = await policy_sync.apply(reread=True)
            except KernelError as e:
                log.warning("periodic policy pass failed: %s", e)
            else:
                if passed.ipcache_ops or passed.flipped or passed.removed:
                    log.info("periodic policy pass repaired drift: %s", passed)
        if watcher.synced:
            await sync.resync_routes(watcher.nodes)


def _barrier(
    manager: EndpointManager,
    sync: PolicySync,
    watcher: NodeWatcher,
    k8s_cursor: WatchCursor,
) -> runtime.BarrierBegin:
    """Converged once every change in weir-k8s (Nodes), weir-ipcache and this node's
    weir-policy at the time of asking is in the maps and routes."""
    kv = runtime.kv_barrier(
        k8s_cursor, sync.ipcache_cursor, sync.policy_cursor, busy=lambda: sync.busy
    )

    async def begin() -> runtime.BarrierCheck:
        check_kv = await kv()

        async def check() -> tuple[bool, str]:
            if not manager.ready or not watcher.synced:
                return False, "starting"
            converged, detail = await check_kv()
            if not converged:
                return False, detail
            return True, (
                f"{len(manager.registry)} endpoints, {len(watcher.applied)} nodes, "
                f"{len(sync.ipcache_entries)} ipcache prefixes, {len(sync.policies)} policies"
            )

        return check

    return begin


def main() -> None:
    raise SystemExit(
        runtime.run(
            "node-loader",
            NodeLoaderConfig,
            run,
            description="Weir node-loader: endpoints, BPF programs and maps on one node",
        )
    )
