"""The Node: registered at start, its status written every heartbeat and on every change of
network readiness.

Registration creates the Node (with the agent-not-ready taint) or, on a restart, updates only
our labels and an unset podCIDR, so taints removed since stay removed. A Node deleted while we
run is registered again at the next status write (it answers 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .apiclient import ApiError, KubeClient
from .node import (
    HostInfo,
    NodeIdentity,
    new_node,
    node_status,
    previous_conditions,
    registration_update,
)
from .status import rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class NodeAgent:
    def __init__(
        self,
        *,
        client: KubeClient,
        ident: NodeIdentity,
        host: HostInfo,
        network_ready: Callable[[], bool],
        heartbeat: float,
        health_port: int = 0,
        clock: Callable[[], float] = time.time,
        on_state: Callable[[bool, str], None] = lambda ok, detail: None,
    ) -> None:
        self.client = client
        self.ident = ident
        self.host = host
        self.network_ready = network_ready
        self.heartbeat = heartbeat
        self.health_port = health_port
        self.clock = clock
        self.on_state = on_state
        self.path = f"/api/v1/nodes/{ident.name}"
        self.registered = False
        self._previous: dict[str, Obj] = {}
        self._wake = asyncio.Event()

    def wake(self, _ready: bool = True) -> None:
        """Write status now (network readiness changed)."""
        self._wake.set()

    async def register(self) -> Obj:
        """Create or update the Node until it is done; returns the stored object."""
        while True:
            existing = await self.client.get(self.path)
            try:
                if existing is None:
                    node = await self.client.create(
                        "/api/v1/nodes", new_node(self.ident, self.host)
                    )
                    log.info("node %s registered", self.ident.name)
                else:
                    wanted = registration_update(existing, self.ident, self.host)
                    node = existing
                    if wanted != existing:
                        node = await self.client.replace(self.path, wanted)
                    spec = node.get("spec") or {}
                    if spec.get("podCIDR") != self.ident.pod_cidr:
                        log.warning(
                            "node %s keeps podCIDR %s (immutable), not %s",
                            self.ident.name,
                            spec.get("podCIDR"),
                            self.ident.pod_cidr,
                        )
                    log.info("node %s exists; updated its registration", self.ident.name)
            except ApiError as e:
                if e.status == 409:  # raced with another writer: read again
                    continue
                raise
            self._previous = previous_conditions(node)
            self.registered = True
            return node

    async def write_status(self) -> None:
        status = node_status(
            self.ident,
            self.host,
            network_ready=self.network_ready(),
            now=rfc3339(self.clock()),
            previous=self._previous,
            health_port=self.health_port,
        )
        try:
            node = await self.client.patch(f"{self.path}/status", {"status": status})
        except ApiError as e:
            if e.status != 404:
                raise
            log.warning("node %s is gone from the API; registering again", self.ident.name)
            self.registered = False
            await self.register()
            node = await self.client.patch(f"{self.path}/status", {"status": status})
        self._previous = previous_conditions(node)

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                if not self.registered:
                    await self.register()
                await self.write_status()
                self.on_state(True, f"node {self.ident.name} registered; status written")
                delay = 1.0
                timeout: float = self.heartbeat
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
                self.on_state(False, f"node status: {e}")
                log.warning("node %s: %s; retrying in %.0fs", self.ident.name, e, delay)
                timeout, delay = delay, min(delay * 2, 30.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
