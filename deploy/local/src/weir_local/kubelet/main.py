"""`weir-local-kubelet`: the composition root of one node's kubelet.

Everything is made here, one line each: the API client, the CNI network watch, the CNI
runner, the sandbox runtime, the Node agent, the pod controller and its informer, and the
health server. It runs in the root network and mount namespaces; pods and the CNI plugin get
their namespaces through setns(2). SIGTERM or SIGINT stop it without touching the pods'
sandboxes: a restarted kubelet adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import resource
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from weir import logs
from weir.cni_config import NETWORK_NAME
from weir.health import Health

from .apiclient import KubeClient
from .cni import CniRunner
from .config import KubeletConfig, parse_args
from .informer import PodInformer
from .metrics import Metrics
from .network import NetworkWatch
from .node import HostInfo, NodeIdentity
from .pods import PodController
from .registration import NodeAgent
from .sandbox import RecordStore, Runtime

log = logging.getLogger("weir.kubelet")
SERVICE = "weir-local-kubelet"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def host_info(state_dir: Path) -> HostInfo:
    os_image = "Linux"
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_image = line.split("=", 1)[1].strip('"')
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    st = os.statvfs(state_dir)
    machine = platform.machine()
    return HostInfo(
        kernel_version=platform.release(),
        os_image=os_image,
        machine_id=_read("/etc/machine-id") or uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex,
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        architecture=_ARCH.get(machine, machine),
        cpus=os.cpu_count() or 1,
        memory_kib=mem_kib,
        ephemeral_storage_kib=st.f_blocks * st.f_frsize // 1024,
    )


def raise_fd_limit() -> None:
    """Four sockets a pod plus connections: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(cfg: KubeletConfig) -> None:
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    health = Health(SERVICE, metrics.registry)
    health.set("node", False, "registering")
    health.set("pods", False, "listing")
    await health.start(cfg.health_host, cfg.health_port)
    client = KubeClient.from_kubeconfig(cfg.kubeconfig)
    network = NetworkWatch(cfg.cni_conf_dir, NETWORK_NAME, poll=cfg.network_poll)
    network.refresh()
    metrics.network_ready.set(1 if network.ready else 0)
    cni = CniRunner(
        cfg.cni_bin_dirs,
        cfg.node_netns_path,
        limit=cfg.max_parallel_cni,
        timeout=cfg.cni_timeout,
        observe=metrics.observe_cni,
    )
    runtime = Runtime(
        prefix=cfg.netns_prefix,
        netns_dir=cfg.netns_dir,
        node_netns=cfg.node_netns_path,
        cni=cni,
        records=RecordStore(cfg.sandbox_dir),
        network=lambda: network.current,
    )
    agent = NodeAgent(
        client=client,
        ident=NodeIdentity(name=cfg.node_name, internal_ip=cfg.internal_ip, pod_cidr=cfg.pod_cidr),
        host=host_info(cfg.state_dir),
        network_ready=lambda: network.ready,
        heartbeat=cfg.heartbeat,
        health_port=health.port,
        on_state=lambda ok, detail: health.set("node", ok, detail),
    )
    pods = PodController(
        node_name=cfg.node_name,
        host_ip=cfg.internal_ip,
        client=client,
        runtime=runtime,
        metrics=metrics,
        workers=cfg.workers,
        resync=cfg.resync,
        on_state=lambda ok, detail: health.set("pods", ok, detail),
    )
    informer = PodInformer(client, cfg.node_name, pods)
    network.subscribe(agent.wake)
    network.subscribe(pods.network_changed)
    network.subscribe(lambda ready: metrics.network_ready.set(1 if ready else 0))
    log.info(
        "kubelet for node %s: %d sandbox record(s) found, network %s",
        cfg.node_name,
        len(runtime.records),
        "ready" if network.ready else "not ready",
    )
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(network.run(), name="cni-config-watch")
            tg.create_task(agent.run(), name="node-status")
            tg.create_task(informer.run(), name="pod-informer")
            tg.create_task(pods.run(), name="pods")
    finally:
        await client.close()
        await health.stop()


async def _main(cfg: KubeletConfig) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run(cfg)
    log.info("kubelet stopped; pod sandboxes left for the next start")


def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse_args(argv)
    logs.configure(SERVICE, level=cfg.log_level, fmt=cfg.log_format)
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(cfg))
    sys.exit(0)


if __name__ == "__main__":
    main()
