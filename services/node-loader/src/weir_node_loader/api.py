"""node-loader's endpoint API on its unix socket (the contract: weir.endpoint_api).

A thin aiohttp shell over `EndpointManager`: it parses and checks each request, maps the
manager's exceptions to the contract's statuses — 400 for a request that cannot be realized as
asked, 503 while not ready, while the pod's policy has not arrived in weir-policy, or while KV
is unreachable (retry), 500 when the kernel refused —
always with a `{"error": ...}` body, and adds each endpoint's counters to what it returns.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web
from weir.endpoint_api import PREFIX, EndpointRequest
from weir.models import EndpointRecord

from weir_node_loader.endpoints import InvalidRequest, validate_container_id
from weir_node_loader.kernel import KernelError
from weir_node_loader.manager import (
    EndpointManager,
    NotReady,
    PolicyUnavailable,
    StoreUnavailable,
)
from weir_node_loader.maps import Counters

log = logging.getLogger("weir.node_loader.api")
MAX_BODY = 64 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _view(record: EndpointRecord, counters: Counters | None) -> dict[str, Any]:
    return {**asdict(record), "counters": (counters or Counters()).to_json()}


class EndpointApi:
    """The HTTP handlers. `manager` is None until the datapath is loaded (every call: 503)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.manager: EndpointManager | None = None
        self._runner: web.AppRunner | None = None
        self._path: Path | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_get("/v1/healthz", self._healthz)
        app.router.add_get(PREFIX, self._list)
        app.router.add_put(PREFIX + "/{id}", self._put)
        app.router.add_get(PREFIX + "/{id}", self._get)
        app.router.add_delete(PREFIX + "/{id}", self._delete)
        return app

    def _ready(self) -> EndpointManager:
        if self.manager is None or not self.manager.ready:
            raise NotReady("node-loader is starting: the datapath is not loaded yet")
        return self.manager

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except (InvalidRequest, ValueError) as e:
            return _error(400, str(e))
        except (NotReady, PolicyUnavailable, StoreUnavailable) as e:
            return _error(503, str(e))
        except KernelError as e:
            log.error("%s %s: %s", request.method, request.path, e)
            return _error(500, f"the datapath could not be programmed: {e}")
        except web.HTTPRequestEntityTooLarge:
            return _error(400, f"request body larger than {MAX_BODY} bytes")

    async def _healthz(self, request: web.Request) -> web.Response:
        self._ready()
        return web.json_response({"ready": True, "node": self.node})

    async def _put(self, request: web.Request) -> web.Response:
        manager = self._ready()
        container_id = validate_container_id(request.match_info["id"])
        body = EndpointRequest.from_json(await request.read())
        if body.container_id != container_id:
            raise InvalidRequest(
                f"container_id {body.container_id!r} in the body differs from {container_id!r} "
                "in the path"
            )
        record = await manager.put(body)
        counters = (await manager.counters(record.host_ifindex)).get(record.host_ifindex)
        return web.json_response(_view(record, counters))

    async def _get(self, request: web.Request) -> web.Response:
        manager = self._ready()
        container_id = validate_container_id(request.match_info["id"])
        record = manager.get(container_id)
        if record is None:
            return _error(404, f"no endpoint {container_id} on node {self.node}")
        counters = (await manager.counters(record.host_ifindex)).get(record.host_ifindex)
        return web.json_response(_view(record, counters))

    async def _delete(self, request: web.Request) -> web.Response:
        manager = self._ready()
        container_id = validate_container_id(request.match_info["id"])
        existed = await manager.delete(container_id)
        return web.json_response({"container_id": container_id, "deleted": existed})

    async def _list(self, request: web.Request) -> web.Response:
        manager = self._ready()
        counters = await manager.counters()
        items = [_view(r, counters.get(r.host_ifindex)) for r in manager.registry.all()]
        return web.json_response({"node": self.node, "endpoints": items})

    # --- serving ------------------------------------------------------------------------------

    async def start(self, path: Path) -> None:
        """Listen on the unix socket `path` (a stale socket file from a crash is replaced)."""
        _prepare_socket(path)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(path)).start()
        os.chmod(path, 0o660)  # root (the runtime's CNI plugins) and its group only
        self._path = path
        log.info("endpoint API on unix:%s", path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._path is not None:
            _remove_socket(self._path)
            self._path = None


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_socket(path)


def _remove_socket(path: Path) -> None:
    """Remove a socket file (never anything else that might sit at that path)."""
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
