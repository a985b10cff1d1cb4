"""The pods bound to this node: list, then watch from the list's resourceVersion.

`fieldSelector=spec.nodeName=<node>` on both. A watch that ends resumes from the last
resourceVersion seen (bookmarks keep it fresh when nothing changes); 410 Gone means the
server's history no longer reaches back, so the informer lists again and hands the sink a
complete new picture; other failures back off with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

import aiohttp

from .apiclient import ApiError, Expired, KubeClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class PodSink(Protocol):
    def replaced(self, pods: list[Obj]) -> None:
        """The complete set of the node's pods (after a list)."""

    def changed(self, event: str, pod: Obj) -> None:
        """ADDED, MODIFIED or DELETED."""

    def informer_state(self, ok: bool, detail: str) -> None: ...


class PodInformer:
    def __init__(
        self,
        client: KubeClient,
        node_name: str,
        sink: PodSink,
        *,
        page_size: int = 500,
        watch_timeout: float = 300.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.client = client
        self.sink = sink
        self.selector = f"spec.nodeName={node_name}"
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.relists = 0

    async def run(self) -> None:
        rv: str | None = None
        delay = 0.2
        while True:
            try:
                if rv is None:
                    rv = await self._list()
                    self.sink.informer_state(True, f"watching from {rv}")
                rv = await self._watch(rv)
                delay = 0.2
            except Expired as e:
                log.info("pods: %s; listing again", e.message)
                rv = None
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                detail = f"{type(e).__name__}: {e}; retrying in {delay:.1f}s"
                self.sink.informer_state(False, detail)
                log.warning("pods: %s", detail)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_backoff)

    async def _list(self) -> str:
        self.relists += 1
        items: list[Obj] = []
        token = ""
        while True:
            params = {"fieldSelector": self.selector, "limit": str(self.page_size)}
            if token:
                params["continue"] = token
            try:
                page = await self.client.request(
                    "GET", "/api/v1/pods", params=params, time_limit=60
                )
            except Expired:
                if not token:
                    raise
                items, token = [], ""  # the snapshot behind the token is gone: start over
                continue
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                self.sink.replaced(items)
                return str(meta.get("resourceVersion") or "")

    async def _watch(self, rv: str) -> str:
        timeout = self.watch_timeout * (1 + random.random())
        params = {
            "fieldSelector": self.selector,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(timeout)),
        }
        async for event in self.client.watch("/api/v1/pods", params, timeout):
            etype = event.get("type")
            obj = event.get("object") or {}
            if etype == "ERROR":
                code = int(obj.get("code") or 0)
                message = str(obj.get("message") or obj)
                if code == 410:
                    raise Expired(410, "Expired", message)
                raise ApiError(code, str(obj.get("reason") or ""), message)
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
            if etype in ("ADDED", "MODIFIED", "DELETED"):
                self.sink.changed(str(etype), obj)
        return rv
