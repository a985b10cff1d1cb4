"""One API server instance's state: store, persistence, operations, controllers.

The composition root: every component is made here, one line each, and nothing is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .allocators import ClusterIPAllocator, NodePortAllocator
from .config import Config
from .controllers.endpointslice import EndpointSliceController
from .controllers.eventttl import EventTTLController
from .controllers.namespace import NamespaceController
from .controllers.podtermination import PodTerminationController
from .controllers.scheduler import SchedulerController
from .openapi import OpenAPIDocuments
from .operations import Api
from .persistence import SqlitePersistence
from .registry import build_strategies
from .resources import BUILTIN_RESOURCES, ResourceRegistry
from .store import ADDED, Store, WatchEvent

log = logging.getLogger(__name__)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Controller(Protocol):
    async def run(self) -> None: ...


class ApiServerState:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.resources = ResourceRegistry(BUILTIN_RESOURCES + config.extra_resources)
        self.persistence = (
            SqlitePersistence(config.state_dir) if config.state_dir is not None else None
        )
        self.store = Store(
            history_size=config.watch_history,
            watch_queue_limit=config.watch_queue_limit,
            persistence=self.persistence,
        )
        self.ips = ClusterIPAllocator(config.service_cluster_ip_range)
        self.node_ports = NodePortAllocator(config.service_node_port_range)
        strategies = build_strategies(self.ips, self.node_ports)
        self.api = Api(self.store, self.resources, strategies, clock=clock)
        self.openapi = OpenAPIDocuments(self.resources)
        # Watch requests are answered 429 until this monotonic time (debug drop-watches).
        self.refuse_watches_until = 0.0
        self._restore()
        self.controllers: list[Controller] = [
            EndpointSliceController(self.api),
            NamespaceController(self.api, resync=config.namespace_resync),
            PodTerminationController(self.api),
            SchedulerController(self.api),
            EventTTLController(self.api, ttl=config.event_ttl),
        ]
        self._task: asyncio.Task[None] | None = None

    def _restore(self) -> None:
        if self.persistence is not None:
            self.store.load(self.persistence.rows(), self.persistence.resource_version())
        for res in self.resources:
            strategy = self.api.strategy(res)
            for e in self.store.entries(res.key):
                strategy.restore(e.obj)
                m = e.obj["metadata"]
                ev = WatchEvent(e.rv, ADDED, res.key, m.get("namespace", ""), m["name"], e, None)
                self.api.owners.on_event(ev)
        ns = self.resources.by_key("namespaces")
        for name in INITIAL_NAMESPACES:
            if self.store.get(ns.key, "", name) is None:
                body: dict[str, Any] = {"metadata": {"name": name}}
                self.api.create(ns, "", body)

    async def start(self) -> None:
        gc.freeze()  # everything restored so far is long-lived
        self._task = asyncio.create_task(self._run_controllers(), name="weir-apiserver-controllers")

    async def _run_controllers(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for c in self.controllers:
                tg.create_task(self._supervise(c), name=type(c).__name__)
            tg.create_task(self._freeze_periodically(), name="gc-freeze")

    async def _freeze_periodically(self) -> None:
        """Keep the cyclic GC's full collections off the stored objects.

        Stored objects are plain JSON dicts: long-lived, acyclic, freed by reference counting.
        Left to the collector, a full collection walks all of them (about 0.5 s at 100k pods:
        a latency spike for every request then). Freezing what is alive every few seconds keeps
        full collections to what is newer (about 20 ms). Young cyclic garbage is still collected
        by the generation 0/1 passes between freezes; what is frozen while cyclic garbage is
        never collected, a small price for a development server.
        """
        while True:
            await asyncio.sleep(self.config.gc_freeze_interval)
            gc.freeze()

    @staticmethod
    async def _supervise(controller: Controller) -> None:
        """Run a controller forever; a crash is logged and the controller restarted."""
        while True:
            try:
                await controller.run()
            except Exception:
                log.exception("%s crashed; restarting in 1s", type(controller).__name__)
            await asyncio.sleep(1.0)

    def close_watches(self) -> None:
        self.store.close_all_watchers("server shutting down")

    async def stop(self) -> None:
        self.close_watches()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.persistence is not None:
            self.persistence.close()
