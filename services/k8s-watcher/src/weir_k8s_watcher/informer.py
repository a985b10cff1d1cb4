"""A Kubernetes informer on kubernetes-asyncio: list, then watch from the list's resourceVersion.

It uses kubernetes-asyncio's configuration, authentication and generated list calls, but reads
the watch stream itself instead of through `kubernetes_asyncio.watch.Watch`, which would turn a
410 Gone into a silent re-watch and deserialize every object into model classes. Here:

- the list is paginated (`limit`/`continue`); an expired continue token restarts the list;
- the watch asks for bookmarks, so its resourceVersion keeps up even when nothing changes;
- a watch that ends (server timeout, closed connection) resumes from the last resourceVersion;
- 410 Gone (as an ERROR event or an HTTP status) means the history is gone: relist;
- connection failures back off exponentially, with jitter, up to `max_backoff` seconds.

The informer hands raw objects to a `Sink`; it keeps no cache of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from kubernetes_asyncio import client

log = logging.getLogger("weir.k8s_watcher.informer")


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """One kind the watcher mirrors, and the kubernetes-asyncio call that lists it."""

    kind: str
    api: Callable[[client.ApiClient], Any]
    list_call: str


KINDS: tuple[WatchedKind, ...] = (
    WatchedKind("Namespace", client.CoreV1Api, "list_namespace"),
    WatchedKind("Node", client.CoreV1Api, "list_node"),
    WatchedKind("Pod", client.CoreV1Api, "list_pod_for_all_namespaces"),
    WatchedKind("Service", client.CoreV1Api, "list_service_for_all_namespaces"),
    WatchedKind("EndpointSlice", client.DiscoveryV1Api, "list_endpoint_slice_for_all_namespaces"),
    WatchedKind("NetworkPolicy", client.NetworkingV1Api, "list_network_policy_for_all_namespaces"),
)


class Expired(Exception):
    """410 Gone: the resourceVersion is older than the server's history; relist."""


class ApiError(Exception):
    """The API server answered with an error other than 410."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Sink(Protocol):
    """Where an informer delivers what it learns (all methods may apply backpressure)."""

    async def listed(self, kind: str, items: list[dict[str, Any]], resource_version: str) -> None:
        """A complete, consistent list of `kind` at `resource_version`."""

    async def changed(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""

    def state(self, kind: str, healthy: bool, detail: str) -> None:
        """The informer's state, for readiness: healthy means listed and watching."""


@dataclass(frozen=True, slots=True)
class InformerSettings:
    page_size: int = 500
    watch_timeout: float = 300.0  # seconds per watch request (jittered), as client-go does
    initial_backoff: float = 0.2
    max_backoff: float = 30.0


class Informer:
    """List-then-watch loop for one kind, forever (until cancelled)."""

    def __init__(
        self,
        kind: WatchedKind,
        api_client: client.ApiClient,
        sink: Sink,
        settings: InformerSettings,
        *,
        on_relist: Callable[[str, str], None] = lambda kind, reason: None,
    ) -> None:
        self.kind = kind
        self._list: Callable[..., Awaitable[aiohttp.ClientResponse]] = getattr(
            kind.api(api_client), kind.list_call
        )
        self._sink = sink
        self._settings = settings
        self._on_relist = on_relist
        self._relist_requested = False
        # The last resourceVersion this informer has fully handed to its sink (list, event or
        # bookmark): everything in the API up to it has been seen.
        self.resource_version = ""

    def request_relist(self) -> None:
        """Relist at the next event or bookmark (e.g. after a failed write downstream)."""
        self._relist_requested = True

    async def run(self) -> None:
        rv: str | None = None
        delay = self._settings.initial_backoff
        reason = "start"
        while True:
            try:
                if rv is None:
                    self._on_relist(self.kind.kind, reason)
                    rv = await self._relist()
                    self.resource_version = rv
                    self._sink.state(self.kind.kind, True, f"watching from {rv}")
                rv = await self._watch(rv)
                delay = self._settings.initial_backoff
                if self._relist_requested:
                    rv, reason = None, "requested"
            except Expired as e:
                log.info("%s: %s; relisting", self.kind.kind, e, extra={"kind": self.kind.kind})
                rv, reason = None, "expired"
            except (
                TimeoutError,
                aiohttp.ClientError,
                ApiError,
                OSError,
                orjson.JSONDecodeError,
            ) as e:
                detail = f"{type(e).__name__}: {e}; retrying in {delay:.1f}s"
                self._sink.state(self.kind.kind, False, detail)
                log.warning("%s: %s", self.kind.kind, detail, extra={"kind": self.kind.kind})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._settings.max_backoff)
                if rv is None:
                    reason = "retry"

    async def _relist(self) -> str:
        self._relist_requested = False
        items: list[dict[str, Any]] = []
        token: str | None = None
        rv = ""
        while True:
            kwargs: dict[str, Any] = {"limit": self._settings.page_size}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self._request(**kwargs)
            except Expired:
                if not token:
                    raise
                # The snapshot behind the continue token is gone: start the list over.
                log.info("%s: list continuation expired; restarting list", self.kind.kind)
                items, token = [], None
                continue
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            token = meta.get("continue") or None
            if not token:
                break
        await self._sink.listed(self.kind.kind, items, rv)
        return rv

    async def _request(self, **kwargs: Any) -> dict[str, Any]:
        resp = await self._list(_preload_content=False, _request_timeout=60, **kwargs)
        try:
            body = await resp.read()
            _raise_for_status(resp.status, body)
            parsed: dict[str, Any] = orjson.loads(body)
            return parsed
        finally:
            resp.release()

    async def _watch(self, rv: str) -> str:
        """Stream changes after `rv` until the server ends the watch; returns the last rv."""
        timeout = self._settings.watch_timeout * (1 + random.random())
        resp = await self._list(
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=int(timeout),
            _preload_content=False,
            # No total timeout; a read stall longer than this means a dead connection.
            _request_timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=timeout + 60
            ),
        )
        try:
            if resp.status != 200:
                _raise_for_status(resp.status, await resp.read())
            async for line in _lines(resp):
                event = orjson.loads(line)
                rv = await self._event(event, rv)
                self.resource_version = rv
                if self._relist_requested:
                    return rv
            return rv  # the server ended the watch: resume from rv
        finally:
            resp.release()

    async def _event(self, event: dict[str, Any], rv: str) -> str:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = int(obj.get("code") or 0)
            message = str(obj.get("message") or obj)
            if code == 410:
                raise Expired(message)
            raise ApiError(code, message)
        new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            await self._sink.changed(self.kind.kind, etype, obj)
        elif etype != "BOOKMARK":
            log.warning("%s: ignoring watch event of type %r", self.kind.kind, etype)
        return new_rv


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Non-empty lines of a streamed body, of any length (aiohttp's readline caps a line at
    128 KiB; one object with large annotations can exceed that)."""
    pending = b""
    async for chunk in resp.content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _raise_for_status(status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    try:
        message = str(orjson.loads(body).get("message") or body[:200])
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode(errors="replace")
    if status == 410:
        raise Expired(message)
    raise ApiError(status, message)
