"""Runs a plan: starts each component, waits until it is ready, restarts it if it dies, and
stops everything in reverse order on the way out.

Children run in their own process groups (so a terminal's Ctrl-C reaches only the supervisor,
which then stops them in order) and receive SIGTERM if the supervisor itself dies, so no
process outlives a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from weir_local.cluster import network
from weir_local.cluster.plan import Component, Plan, kubeconfig_yaml
from weir_local.cluster.state import ClusterState, ComponentState, StateFile

log = logging.getLogger("weir.dev")
PR_SET_PDEATHSIG = 1
HEALTHY_RUN = 60.0  # seconds a restarted component must run before its backoff resets
_libc = ctypes.CDLL(None, use_errno=True)


class StartError(Exception):
    """A component did not become ready; the message carries the tail of its log."""


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Supervisor:
    def __init__(
        self,
        plan: Plan,
        *,
        ready_timeout: float = 120.0,
        on_event: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.plan = plan
        self.ready_timeout = ready_timeout
        self.on_event = on_event
        self.state_file = StateFile(plan.state_dir)
        self.state = ClusterState(
            supervisor_pid=os.getpid(),
            nats_url=plan.nats_url,
            api_url=plan.api_url,
            kubeconfig=str(plan.kubeconfig),
            cluster_id=plan.cluster_id,
            bpf_root=str(plan.bpf_root),
            nodes=list(plan.nodes),
        )
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._stopping = False
        self.logs = plan.state_dir / "logs"

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring the whole plan up and ready, or raise StartError."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state_file.write(self.state)
        async with aiohttp.ClientSession() as http:
            for comp in self.plan.infrastructure():
                await self._spawn(comp)
                await self._wait_ready(http, comp)
                if comp.name == "apiserver":
                    self.plan.kubeconfig.write_text(kubeconfig_yaml(self.plan.api_url))
            try:
                network.create(self.plan.cluster_id, self.plan.node_nets)
            except network.NetworkError as e:
                raise StartError(f"cannot create the node network: {e}") from e
            for node in self.plan.nodes:
                (self.plan.node_dir(node) / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
            self.on_event(
                "nodes "
                + ", ".join(
                    f"{n.name} ({n.internal_ip}, pods {n.pod_cidr})" for n in self.plan.node_nets
                )
            )
            services = self.plan.services()
            for comp in services:
                await self._spawn(comp)
            await asyncio.gather(*(self._wait_ready(http, c) for c in services))
            await self._wait_nodes_schedulable(http)
        self.state.ready = True
        self.state_file.write(self.state)

    async def watch(self) -> None:
        """Restart any component that exits, with backoff, until cancelled."""
        comps = {c.name: c for c in self.plan.components()}
        backoff = dict.fromkeys(comps, 1.0)
        started = dict.fromkeys(comps, time.monotonic())
        while True:
            waits = {asyncio.ensure_future(p.wait()): name for name, p in self._procs.items()}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for fut in pending:
                fut.cancel()
            for fut in done:
                name = waits[fut]
                code = fut.result()
                if time.monotonic() - started[name] > HEALTHY_RUN:
                    backoff[name] = 1.0  # it ran well for a while: this is a fresh failure
                delay = backoff[name]
                backoff[name] = min(delay * 2, 30.0)
                self.on_event(
                    f"{name} exited with code {code}; restarting in {delay:.0f}s "
                    f"(log: {self.logs / comps[name].log})"
                )
                self.state.components[name].ready = False
                self.state.components[name].restarts += 1
                self.state_file.write(self.state)
                await asyncio.sleep(delay)
                await self._spawn(comps[name])
                started[name] = time.monotonic()

    async def stop(self) -> None:
        """Stop services first, then the API server, then NATS."""
        self._stopping = True
        order = [c.name for c in reversed(self.plan.components())]
        services = [n for n in order if n not in ("apiserver", "nats")]
        await asyncio.gather(*(self._terminate(n) for n in services))
        for name in ("apiserver", "nats"):
            await self._terminate(name)

    # --- processes ------------------------------------------------------------------------------

    async def _spawn(self, comp: Component) -> None:
        # A local log file: opening it does not block the loop in any way that matters.
        with open(self.logs / comp.log, "ab") as logfile:  # noqa: ASYNC230
            proc = await asyncio.create_subprocess_exec(
                *comp.argv,
                env={**os.environ, **comp.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._procs[comp.name] = proc
        prev = self.state.components.get(comp.name, ComponentState())
        self.state.components[comp.name] = ComponentState(
            pid=proc.pid,
            argv0=Path(comp.argv[0]).name,
            log=str(self.logs / comp.log),
            probe=comp.probe.http or f"tcp://127.0.0.1:{comp.probe.tcp}",
            restarts=prev.restarts,
        )
        self.state_file.write(self.state)

    async def _wait_ready(self, http: aiohttp.ClientSession, comp: Component) -> None:
        deadline = time.monotonic() + self.ready_timeout
        proc = self._procs[comp.name]
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise StartError(
                    f"{comp.name} exited with code {proc.returncode} while starting:\n"
                    + _log_tail(self.logs / comp.log)
                )
            if await _probe(http, comp):
                self.state.components[comp.name].ready = True
                self.state_file.write(self.state)
                self.on_event(f"{comp.name} ready")
                return
            await asyncio.sleep(0.2)
        raise StartError(
            f"{comp.name} not ready after {self.ready_timeout:.0f}s "
            f"({comp.probe.http or comp.probe.tcp}):\n" + _log_tail(self.logs / comp.log)
        )

    async def _wait_nodes_schedulable(self, http: aiohttp.ClientSession) -> None:
        """Every node Ready and without NoSchedule taints in the API: a cluster is not ready
        while the scheduler would put every pod on the first node to get there."""
        deadline = time.monotonic() + self.ready_timeout
        waiting: dict[str, str] = {}
        while time.monotonic() < deadline:
            async with http.get(f"{self.plan.api_url}/api/v1/nodes") as r:
                nodes = {n["metadata"]["name"]: n for n in (await r.json()).get("items", [])}
            waiting = {name: node_blocker(nodes.get(name)) for name in self.plan.nodes}
            waiting = {name: why for name, why in waiting.items() if why}
            if not waiting:
                self.on_event("nodes ready: " + ", ".join(self.plan.nodes))
                return
            await asyncio.sleep(0.2)
        raise StartError(
            "nodes not schedulable after {:.0f}s: {}".format(
                self.ready_timeout, "; ".join(f"{n}: {why}" for n, why in waiting.items())
            )
        )

    async def _terminate(self, name: str, grace: float = 10.0) -> None:
        proc = self._procs.get(name)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def node_blocker(node: dict[str, Any] | None) -> str:
    """Why the scheduler would not place a pod on this Node ("" when it would)."""
    if node is None:
        return "not registered"
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return "not Ready"
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return "cordoned"
    taints = [t for t in spec.get("taints") or [] if t.get("effect") == "NoSchedule"]
    if taints:
        return "tainted " + ", ".join(str(t.get("key")) for t in taints)
    return ""


async def _probe(http: aiohttp.ClientSession, comp: Component) -> bool:
    if comp.probe.tcp:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", comp.probe.tcp)
        except OSError:
            return False
        writer.close()
        return True
    try:
        async with http.get(comp.probe.http, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
