"""A small Kubernetes API client for the kubelet: JSON requests and watch streams on aiohttp.

The kubelet needs a handful of verbs on raw JSON, with patches that pick their content type,
and a watch stream read line by line: plain REST on one aiohttp session does all of it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from . import kubeconfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer, with the Status object's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Expired(ApiError):
    """410 Gone: the resourceVersion is older than the server's history; relist."""


def _error(status: int, body: bytes) -> ApiError:
    try:
        parsed = orjson.loads(body)
        reason = str(parsed.get("reason") or "")
        message = str(parsed.get("message") or body[:200])
    except (orjson.JSONDecodeError, AttributeError):
        reason, message = "", body[:200].decode(errors="replace")
    return (Expired if status == 410 else ApiError)(status, reason, message)


class KubeClient:
    def __init__(self, host: str, *, headers: Mapping[str, str], ssl_context: Any = None) -> None:
        self.host = host.rstrip("/")
        self._headers = dict(headers)
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        settings = kubeconfig.load(path)
        headers = {
            "User-Agent": "weir-local-kubelet/0.1.0",
            "Accept": "application/json",
            **settings.headers,
        }
        return cls(settings.server, headers=headers, ssl_context=settings.ssl_context)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        time_limit: float = 30.0,
    ) -> Obj:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        async with self.session.request(
            method,
            self.host + path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=time_limit),
        ) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise _error(resp.status, raw)
            parsed: Obj = orjson.loads(raw) if raw else {}
            return parsed

    async def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: Obj) -> Obj:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Obj, *, patch_type: str = MERGE_PATCH) -> Obj:
        return await self.request("PATCH", path, body=body, content_type=patch_type)

    async def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        """DELETE with DeleteOptions; None when it was already gone."""
        try:
            return await self.request("DELETE", path, body=body)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def watch(
        self, path: str, params: Mapping[str, str], read_limit: float
    ) -> AsyncIterator[Obj]:
        """The events of one watch request, until the server ends it."""
        async with self.session.get(
            self.host + path,
            params={**params, "watch": "1"},
            # No total timeout: a read stall longer than this means a dead connection.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_limit + 30),
        ) as resp:
            if resp.status != 200:
                raise _error(resp.status, await resp.read())
            pending = b""
            # iter_any: one object can be longer than aiohttp's readline limit.
            async for chunk in resp.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
            if pending.strip():
                yield orjson.loads(pending)
