"""The node-loader process: one per node, the only Weir process that touches the kernel.

Composition root. In order: the endpoint API's socket (answering 503 until ready), the pins
(checked before anything trusts them), the programs (compiled once), the node's network
namespace, then a reconcile of KV, veths and pins that re-adopts what a previous run left —
programs stay attached and counters keep counting across a restart. Then, concurrently: the
Nodes from KV weir-k8s (CNI conflist, routes, taint), the taint remover, the periodic resync
and the convergence barrier. Every blocking kernel call runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from weir import catalog, runtime
from weir.bus import KvBucket
from weir.cni_config import PluginConfig
from weir.kube import api_client

from weir_node_loader import maps, pins, program
from weir_node_loader.api import EndpointApi
from weir_node_loader.config import NodeLoaderConfig
from weir_node_loader.linux import LinuxKernel
from weir_node_loader.manager import EndpointManager
from weir_node_loader.metrics import Metrics
from weir_node_loader.nodes import NodeSync, NodeWatcher
from weir_node_loader.store import KvEndpointStore
from weir_node_loader.taint import TaintRemover

T = TypeVar("T")
log = logging.getLogger("weir.node_loader")
CHECKS = ("socket", "pins", "program", "netns", "endpoints", "cni-config", "routes", "taint")


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


async def run(rt: runtime.Runtime[NodeLoaderConfig]) -> None:
    cfg = rt.config
    cfg.check()
    for check in CHECKS:
        rt.health.set(check, False, "starting")
    metrics = Metrics(rt.registry)
    api = EndpointApi(cfg.node_name)
    kernel_thread = KernelThread()
    kernel: LinuxKernel | None = None
    try:
        await api.start(Path(cfg.socket_path))
        rt.health.set("socket", True, f"endpoint API on unix:{cfg.socket_path}")
        kernel = await load_datapath(cfg, kernel_thread, rt)
        endpoints_kv = await rt.bucket(catalog.ENDPOINTS)
        k8s_kv = await rt.bucket(catalog.K8S)
        manager = EndpointManager(
            node=cfg.node_name,
            kernel=kernel,
            store=KvEndpointStore(endpoints_kv, cfg.node_name),
            metrics=metrics,
            run=kernel_thread,
        )
        api.manager = manager
        report = await manager.reconcile()
        log.info("endpoints at start: %s", report)
        rt.health.set("endpoints", True, f"reconciled at start: {report}")

        def on_state(check: str, ok: bool, detail: str) -> None:
            rt.health.set(check, ok, detail)

        remover = TaintRemover(
            node=cfg.node_name,
            connect=functools.partial(api_client, cfg.kubeconfig),
            on_state=functools.partial(on_state, "taint"),
        )
        sync = NodeSync(
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
        watcher = NodeWatcher(k8s_kv, sync.apply)
        await rt.serve_barrier(_barrier(rt, k8s_kv.raw, manager, watcher), node=cfg.node_name)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(watcher.run(), name="nodes")
            tasks.create_task(remover.run(sync.conflist_written.wait), name="taint")
            tasks.create_task(
                _resync(cfg.resync_seconds, manager, sync, watcher, rt), name="resync"
            )
    finally:
        await api.stop()
        if kernel is not None:
            await kernel_thread(kernel.close)  # programs stay attached, pins stay pinned
        kernel_thread.shutdown()


async def _resync(
    every: float,
    manager: EndpointManager,
    sync: NodeSync,
    watcher: NodeWatcher,
    rt: runtime.Runtime[NodeLoaderConfig],
) -> None:
    """The periodic full pass: repairs drift nobody announced (a veth deleted by hand...)."""
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
        if watcher.synced:
            await sync.resync_routes(watcher.nodes)


def _barrier(
    rt: runtime.Runtime[NodeLoaderConfig],
    k8s: KvBucket,
    manager: EndpointManager,
    watcher: NodeWatcher,
) -> runtime.BarrierBegin:
    """Converged once every Node change in weir-k8s at the time of asking has been applied."""

    async def begin() -> runtime.BarrierCheck:
        info = await rt.js.stream_info(f"KV_{k8s.name}")
        last = int(info.state.last_seq)
        wanted = {key: e.revision for key, e in (await k8s.snapshot("node.>")).items()}

        async def check() -> tuple[bool, str]:
            if not manager.ready or not watcher.synced:
                return False, "starting"
            applied = watcher.applied
            behind = [k for k, rev in wanted.items() if applied.get(k, 0) < rev]
            behind += [k for k, rev in applied.items() if k not in wanted and rev <= last]
            if behind:
                return False, f"applying {', '.join(sorted(behind))}"
            return True, f"{len(manager.registry)} endpoints, {len(applied)} nodes applied"

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
