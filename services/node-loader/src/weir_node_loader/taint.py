"""Removing the node.weir.io/agent-not-ready taint from this node's Node, once ready.

A Node is registered with that taint so no pod is scheduled there before node-loader can wire
it. node-loader removes only that taint, with a JSON patch that first tests the exact entry it
read (a concurrent change of the taints fails the test and is retried with backoff, never
overwritten), and again whenever it sees the taint come back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

TAINT_KEY = "node.weir.io/agent-not-ready"
TAINT_EFFECT = "NoSchedule"
log = logging.getLogger("weir.node_loader.taint")


def is_ours(taint: Any) -> bool:
    return (
        isinstance(taint, dict)
        and taint.get("key") == TAINT_KEY
        and taint.get("effect") == TAINT_EFFECT
    )


def removal_patch(taints: list[Any]) -> list[dict[str, Any]]:
    """A JSON patch (RFC 6902) removing every copy of the taint, each guarded by a test of the
    exact entry; highest index first, so earlier indexes stay valid. Empty: nothing to remove."""
    ops: list[dict[str, Any]] = []
    for i in reversed(range(len(taints))):
        if is_ours(taints[i]):
            path = f"/spec/taints/{i}"
            ops += [
                {"op": "test", "path": path, "value": taints[i]},
                {"op": "remove", "path": path},
            ]
    return ops


async def remove_once(api: client.ApiClient, node: str) -> bool:
    """One attempt: True when the taint was removed, False when the Node did not have it."""
    # Raw JSON both ways (no model classes): the test op must carry the entry exactly as read.
    core: Any = client.CoreV1Api(api)
    resp = await core.read_node(node, _preload_content=False)
    try:
        raw = json.loads(await resp.read())
    finally:
        resp.release()
    taints = (raw.get("spec") or {}).get("taints") or []
    ops = removal_patch(taints if isinstance(taints, list) else [])
    if not ops:
        return False
    await core.patch_node(node, ops, _content_type="application/json-patch+json")
    return True


class TaintRemover:
    """Removes the taint when told the node is ready, and again each time it is kicked."""

    def __init__(
        self,
        *,
        node: str,
        connect: Callable[[], Awaitable[client.ApiClient]],
        on_state: Callable[[bool, str], None],
        max_backoff: float = 30.0,
    ) -> None:
        self._node = node
        self._connect = connect
        self._on_state = on_state
        self._max_backoff = max_backoff
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """The taint may be back (the Node was seen with it): check again."""
        self._kick.set()

    async def run(self, ready: Callable[[], Awaitable[object]]) -> None:
        self._on_state(False, "waiting for the datapath and the CNI config")
        await ready()
        api: client.ApiClient | None = None
        delay = 0.5
        try:
            while True:
                self._kick.clear()
                try:
                    if api is None:
                        api = await self._connect()
                    removed = await remove_once(api, self._node)
                except Exception as e:  # every failure has one remedy: try again later
                    detail = _describe(e)
                    self._on_state(False, f"cannot remove taint {TAINT_KEY}: {detail}")
                    log.warning("taint %s on %s: %s; retrying", TAINT_KEY, self._node, detail)
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, self._max_backoff)
                    continue
                delay = 0.5
                if removed:
                    log.info("removed taint %s from node %s", TAINT_KEY, self._node)
                self._on_state(True, f"node {self._node} is free of {TAINT_KEY}")
                await self._kick.wait()
        finally:
            if api is not None:
                await api.close()


def _describe(e: Exception) -> str:
    if isinstance(e, ApiException):
        if e.status == 404:
            return "the Node does not exist (yet)"
        return f"HTTP {e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"
