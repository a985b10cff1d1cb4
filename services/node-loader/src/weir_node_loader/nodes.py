"""The cluster's Nodes, from KV weir-k8s: this node's CNI config, routes to the others, taint.

`NodeWatcher` keeps the latest Node objects (keys `node.<name>`) and, once caught up with the
bucket and after every change, hands the whole set to `NodeSync`, which makes the node agree
with it: the conflist carries this node's podCIDR, every other node's podCIDR is routed via its
InternalIP, and a returning agent-not-ready taint is removed again. It is level-triggered —
each pass looks at the full set, and the periodic resync repeats the route pass to repair drift.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from weir.bus import CaughtUp, TypedKv, WatchCursor
from weir.cni_config import PluginConfig
from weir.models import K8sObject, Node, Taint

from weir_node_loader import cniconf, routes, taint
from weir_node_loader.kernel import Kernel, KernelError
from weir_node_loader.manager import Runner
from weir_node_loader.metrics import Metrics

log = logging.getLogger("weir.node_loader.nodes")
StateSink = Callable[[str, bool, str], None]  # (check, ok, detail)


class NodeWatcher:
    """The latest Node objects; `on_change` after the initial snapshot and every change."""

    def __init__(
        self,
        kv: TypedKv[K8sObject],
        on_change: Callable[[dict[str, Node]], Awaitable[None]],
        cursor: WatchCursor | None = None,
    ) -> None:
        self._kv = kv
        self._on_change = on_change
        self._cursor = cursor
        self.nodes: dict[str, Node] = {}
        self._revisions: dict[str, int] = {}
        self.applied: dict[str, int] = {}  # key -> revision, as of the last completed pass

    synced = False

    async def run(self) -> None:
        synced = False
        seen = 0
        async for item in self._kv.watch("node.>", self._cursor):
            if isinstance(item, CaughtUp):
                synced = True
            else:
                seen = max(seen, item.revision)
                name = item.key.split(".", 1)[1]
                if isinstance(item.value, Node):
                    self.nodes[name] = item.value
                    self._revisions[item.key] = item.revision
                else:
                    self.nodes.pop(name, None)
                    self._revisions.pop(item.key, None)
            if synced:
                self.synced = True
                revisions = dict(self._revisions)
                await self._on_change(dict(self.nodes))
                self.applied = revisions
                if self._cursor is not None:
                    self._cursor.mark_applied(seen)


class NodeSync:
    def __init__(
        self,
        *,
        node: str,
        kernel: Kernel,
        run: Runner,
        plugin: Callable[[str], PluginConfig],
        conf_dir: Path,
        metrics: Metrics,
        on_state: StateSink,
        taint_remover: taint.TaintRemover,
    ) -> None:
        self._node = node
        self._kernel = kernel
        self._run = run
        self._plugin = plugin
        self._conf_dir = conf_dir
        self._metrics = metrics
        self._on_state = on_state
        self._taint = taint_remover
        self.conflist_written = asyncio.Event()
        self._lock = asyncio.Lock()

    async def apply(self, nodes: Mapping[str, Node]) -> None:
        async with self._lock:
            me = nodes.get(self._node)
            await self._cni_config(me)
            await self._sync_routes(nodes)
            if me is not None and any(taint.is_ours(_as_json(t)) for t in me.taints):
                self._taint.kick()

    async def _cni_config(self, me: Node | None) -> None:
        if me is None:
            if not self.conflist_written.is_set():
                self._on_state("cni-config", False, f"node {self._node} is not in weir-k8s yet")
            return
        subnet = routes.pod_cidr(me)
        if subnet is None:
            if not self.conflist_written.is_set():
                self._on_state("cni-config", False, f"node {self._node} has no podCIDR yet")
            return
        content = cniconf.render(self._plugin(subnet))
        try:
            written = await asyncio.to_thread(cniconf.write, self._conf_dir, content)
        except OSError as e:
            self._on_state("cni-config", False, f"cannot write the conflist: {e}")
            return
        if written:
            self._metrics.cni_config_writes.inc()
            log.info("wrote %s for podCIDR %s", self._conf_dir / "05-weir.conflist", subnet)
        self._on_state("cni-config", True, f"05-weir.conflist for podCIDR {subnet}")
        self.conflist_written.set()

    async def resync_routes(self, nodes: Mapping[str, Node]) -> None:
        """The route pass alone (periodic drift repair)."""
        async with self._lock:
            await self._sync_routes(nodes)

    async def _sync_routes(self, nodes: Mapping[str, Node]) -> None:
        desired = routes.desired_routes(nodes.values(), self._node)
        try:
            actual = await self._run(self._kernel.routes)
            plan = routes.plan_routes(desired, actual)
            for cidr, gateway in {**plan.add, **plan.replace}.items():
                await self._run(functools.partial(self._kernel.set_route, cidr, gateway))
                action = "added" if cidr in plan.add else "replaced"
                self._metrics.routes.labels(action).inc()
                log.info("route %s via %s %s", cidr, gateway, action)
            for cidr in plan.delete:
                await self._run(functools.partial(self._kernel.delete_route, cidr))
                self._metrics.routes.labels("deleted").inc()
                log.info("route %s deleted (no such node now)", cidr)
        except KernelError as e:
            self._metrics.datapath_errors.labels(e.reason).inc()
            self._on_state("routes", False, str(e))
            log.warning("routes: %s", e)
            return
        self._on_state("routes", True, f"{len(desired)} routes to other nodes' pods")


def _as_json(t: Taint) -> dict[str, str]:
    return {"key": t.key, "effect": t.effect}
