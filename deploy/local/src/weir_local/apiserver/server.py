"""The aiohttp application: URL routing, HTTP verbs, content negotiation, errors.

Paths follow kube-apiserver: /api/v1/{resource}, /api/v1/namespaces/{ns}/{resource}/{name}[/{sub}],
/apis/{group}/{version}/..., discovery (/api, /apis, ...), /openapi/v3, /version, /healthz,
/livez, /readyz. Every failure is a metav1.Status body.

Debug endpoints for tests (not part of the Kubernetes API):
- `POST /debug/weir/compact` drops the event history: every watch resourceVersion and continue
  token from before now gets 410 Expired.
- `POST /debug/weir/drop-watches?refuseSeconds=N` closes every open watch stream and answers
  new watch requests with 429 and `Retry-After: 1` for N seconds (a watch-cache outage).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from . import discovery, encoding, tables, watchstream
from .config import Config
from .errors import StatusError, method_not_allowed
from .operations import PATCH_TYPES, ListQuery
from .resources import ResourceInfo
from .state import ApiServerState

log = logging.getLogger("weir_local.apiserver")

STATE_KEY = web.AppKey("weir_apiserver_state", ApiServerState)
JSON_TYPE = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return _raw(orjson.dumps(obj), status, headers)


def _raw(
    body: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON_TYPE,
) -> web.Response:
    resp = web.Response(body=body, status=status, headers=headers)
    resp.content_type = content_type.split(";", maxsplit=1)[0]
    if ";" in content_type:
        # aiohttp splits parameters off content_type; set the full header for discovery.
        resp.headers["Content-Type"] = content_type
    return resp


def _error(err: StatusError) -> web.Response:
    return _json(err.status(), err.code, dict(err.headers))


def _not_found() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource", {})


@dataclass
class Target:
    """A parsed resource URL."""

    res: ResourceInfo
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    name: str
    subresource: str
    legacy_watch: bool


def _parse_resource_path(state: ApiServerState, segs: list[str]) -> Target | None:
    if segs[0] == "api":
        if len(segs) < 3:
            return None
        group, version, rest = "", segs[1], segs[2:]
    else:
        if len(segs) < 4:
            return None
        group, version, rest = segs[1], segs[2], segs[3:]
    legacy_watch = False
    if rest and rest[0] == "watch":
        legacy_watch, rest = True, rest[1:]
    if not rest:
        return None
    reg = state.resources
    if rest[0] == "namespaces" and len(rest) >= 3:
        res = reg.lookup(group, version, rest[2])
        if res is not None and res.namespaced and len(rest) <= 5:
            name = rest[3] if len(rest) > 3 else ""
            sub = rest[4] if len(rest) > 4 else ""
            return Target(res, rest[1], name, sub, legacy_watch)
    res = reg.lookup(group, version, rest[0])
    if res is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if res.namespaced and name:
        return None  # a namespaced object needs its namespace in the path
    return Target(res, None if res.namespaced else "", name, sub, legacy_watch)


class Routes:
    def __init__(self, state: ApiServerState) -> None:
        self.state = state
        self.api = state.api

    # ---- entry -------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        try:
            if segs and segs[0] in ("api", "apis"):
                target = (
                    _parse_resource_path(self.state, segs)
                    if len(segs) > (2 if segs[0] == "api" else 3)
                    else None
                )
                if target is None:
                    return self._discovery(request, segs)
                return await self._resource(request, target)
            return await self._misc(request, segs)
        except StatusError as e:
            if e.code >= 500:
                log.info("%s %s -> %d %s", request.method, request.path_qs, e.code, e.message)
            return _error(e)
        except (ConnectionError, web.HTTPException):
            raise
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path_qs)
            return _error(StatusError(500, "InternalError", f"Internal error occurred: {e}"))

    # ---- non-resource paths ------------------------------------------------------------------

    async def _misc(self, request: web.Request, segs: list[str]) -> web.StreamResponse:
        path = "/".join(segs)
        if path in ("healthz", "livez", "readyz") or (
            segs and segs[0] in ("healthz", "livez", "readyz")
        ):
            return web.Response(text="ok", content_type="text/plain")
        if path == "version":
            return _json(discovery.KUBERNETES_VERSION)
        if path == "":
            paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/openapi/v3",
                "/readyz",
                "/version",
            ]
            paths += [f"/apis/{g}/{v}" for g, v in self.state.resources.group_versions() if g]
            return _json({"paths": sorted(paths)})
        if path == "openapi/v3":
            return _raw(self.state.openapi.root)
        if segs[:2] == ["openapi", "v3"]:
            doc = self.state.openapi.docs.get("/".join(segs[2:]))
            if doc is None:
                raise _not_found()
            return _raw(doc, headers={"Cache-Control": "public, immutable"})
        if path == "debug/weir/compact" and request.method == "POST":
            self.state.store.compact()
            return _json({"compactedAt": str(self.state.store.rv)})
        if path == "debug/weir/drop-watches" and request.method == "POST":
            seconds = encoding.int_param(request.query, "refuseSeconds") or 0
            closed = self.state.store.close_all_watchers("dropped by /debug/weir/drop-watches")
            self.state.refuse_watches_until = time.monotonic() + seconds
            return _json({"closedWatches": closed, "refuseSeconds": seconds})
        raise _not_found()

    def _discovery(self, request: web.Request, segs: list[str]) -> web.StreamResponse:
        if len(segs) > (2 if segs[0] == "api" else 3):
            raise _not_found()  # a resource path of a kind not served here
        if request.method != "GET":
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        reg = self.state.resources
        accept = request.headers.get("Accept", "")
        aggregated = None
        for part in accept.split(","):
            p = part.strip().replace(" ", "")
            if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
                if "v=v2beta1" in p:
                    aggregated = (discovery.AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1")
                    break
                if "v=v2" in p and "application/json" in p:
                    aggregated = (discovery.AGGREGATED_V2, "apidiscovery.k8s.io/v2")
                    break
        if segs == ["api"]:
            if aggregated:
                doc = discovery.aggregated(reg, core=True, api_version=aggregated[1])
                return _raw(orjson.dumps(doc), content_type=aggregated[0])
            return _json(discovery.api_versions(request.host))
        if segs == ["apis"]:
            if aggregated:
                doc = discovery.aggregated(reg, core=False, api_version=aggregated[1])
                return _raw(orjson.dumps(doc), content_type=aggregated[0])
            return _json(discovery.api_group_list(reg))
        if segs[0] == "api" and len(segs) == 2:
            found = discovery.api_resource_list(reg, "", segs[1])
        elif segs[0] == "apis" and len(segs) == 2:
            found = discovery.api_group(reg, segs[1])
        elif segs[0] == "apis" and len(segs) == 3:
            found = discovery.api_resource_list(reg, segs[1], segs[2])
        else:
            found = None
        if found is None:
            raise _not_found()
        return _json(found)

    # ---- resources ---------------------------------------------------------------------------

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        res = t.res
        if t.subresource and res.subresource(t.subresource) is None:
            raise _not_found()
        if not t.name:
            if method == "GET":
                if t.legacy_watch or encoding.flag(q, "watch"):
                    return await self._watch(request, t)
                return self._list(request, t)
            if method == "POST" and (t.namespace is not None or not res.namespaced):
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise method_not_allowed(
                f"the server does not allow this method on the requested resource ({method})"
            )
        namespace = t.namespace or ""
        if method == "GET" and (t.legacy_watch or encoding.flag(q, "watch")) and not t.subresource:
            return await self._watch(request, t)  # a watch of one object
        if t.subresource == "binding":
            if method != "POST":
                raise method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            body = encoding.decode_body(await request.read(), request.content_type)
            return _json(self.api.bind(namespace, t.name, body), 201)
        if method == "GET":
            entry = self.api.get(res, namespace, t.name)
            out = encoding.negotiate(request.headers.get("Accept", ""), q)
            if out.as_table:
                table = tables.table(
                    res.kind,
                    [entry.obj],
                    self.api.clock(),
                    include=out.include,
                    list_meta={"resourceVersion": str(entry.rv)},
                )
                table["apiVersion"] = f"meta.k8s.io/{out.table_version}"
                return _json(table)
            if out.as_partial:
                p = tables.partial_metadata(entry.obj)
                p["apiVersion"] = f"meta.k8s.io/{out.table_version}"
                return _json(p)
            return _raw(entry.raw)
        dry = encoding.dry_run(q.getall("dryRun", []))
        fv = encoding.field_validation(q.get("fieldValidation"))
        if method == "PUT" and t.subresource == "finalize":
            body = encoding.decode_body(await request.read(), request.content_type)
            spec = body.get("spec") if isinstance(body, dict) else None
            wanted = spec.get("finalizers") if isinstance(spec, dict) else None
            finalizers = [str(f) for f in wanted] if isinstance(wanted, list) else []
            return _json(self.api.set_namespace_finalizers(t.name, finalizers))
        if method == "PUT":
            body = encoding.decode_body(await request.read(), request.content_type)
            result = self.api.update(
                res,
                namespace,
                t.name,
                body,
                subresource=t.subresource,
                dry_run=dry,
                field_validation=fv,
            )
            return self._write_response(result.obj, 201 if result.created else 200, result.warnings)
        if method == "PATCH":
            ctype = request.content_type.lower()
            if ctype == encoding.APPLY_PATCH:
                raise encoding.apply_patch_unsupported()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None:
                raise encoding.apply_patch_unsupported()
            result = self.api.patch(
                res,
                namespace,
                t.name,
                patch_type,
                await request.read(),
                subresource=t.subresource,
                dry_run=dry,
                field_validation=fv,
            )
            return self._write_response(result.obj, 200, result.warnings)
        if method == "DELETE":
            if t.subresource:
                raise method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            options = await self._delete_options(request)
            dry = dry or encoding.dry_run(list(options.get("dryRun") or []))
            obj = self.api.delete(res, namespace, t.name, options, dry_run=dry)
            return _json(obj, 200)
        raise method_not_allowed("the server does not allow this method on the requested resource")

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = encoding.decode_body(raw, request.content_type) if raw.strip() else None
        options: dict[str, Any] = body if isinstance(body, dict) else {}
        grace = encoding.int_param(request.query, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        return options

    def _write_response(
        self, obj: dict[str, Any], status: int, warnings: list[str]
    ) -> web.Response:
        resp = _json(obj, status)
        for w in warnings:
            resp.headers.add("Warning", encoding.warning_header(w))
        return resp

    async def _create(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        dry = encoding.dry_run(q.getall("dryRun", []))
        fv = encoding.field_validation(q.get("fieldValidation"))
        body = encoding.decode_body(await request.read(), request.content_type)
        result = self.api.create(t.res, t.namespace or "", body, dry_run=dry, field_validation=fv)
        return self._write_response(result.obj, 201, result.warnings)

    def _list_query(self, request: web.Request) -> ListQuery:
        q = request.query
        return ListQuery(
            label_selector=q.get("labelSelector", ""),
            field_selector=q.get("fieldSelector", ""),
            limit=encoding.int_param(q, "limit") or 0,
            continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""),
        )

    def _list(self, request: web.Request, t: Target) -> web.StreamResponse:
        res = t.res
        out = encoding.negotiate(request.headers.get("Accept", ""), request.query)
        result = self.api.list_entries(res, t.namespace, self._list_query(request))
        list_meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
        if result.remaining is not None:
            list_meta["remainingItemCount"] = result.remaining
        if out.as_table:
            table = tables.table(
                res.kind,
                (e.obj for e in result.entries),
                self.api.clock(),
                include=out.include,
                list_meta=list_meta,
            )
            table["apiVersion"] = f"meta.k8s.io/{out.table_version}"
            return _json(table)
        if out.as_partial:
            items = [tables.partial_metadata(e.obj) for e in result.entries]
            for i in items:
                i["apiVersion"] = f"meta.k8s.io/{out.table_version}"
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": f"meta.k8s.io/{out.table_version}",
                    "metadata": list_meta,
                    "items": items,
                }
            )
        body = encoding.list_body(
            res.list_kind, res.api_version, list_meta, [e.raw for e in result.entries]
        )
        return _raw(body)

    async def _delete_collection(self, request: web.Request, t: Target) -> web.StreamResponse:
        if "deletecollection" not in t.res.verbs:
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        options = await self._delete_options(request)
        # kubectl puts dryRun in the DeleteOptions body; other clients use the query.
        dry = encoding.dry_run(
            request.query.getall("dryRun", []) + list(options.get("dryRun") or [])
        )
        items = self.api.delete_collection(
            t.res, t.namespace, self._list_query(request), options, dry_run=dry
        )
        return _json(
            {
                "kind": t.res.list_kind,
                "apiVersion": t.res.api_version,
                "metadata": {"resourceVersion": str(self.state.store.rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        state = self.state
        if time.monotonic() < state.refuse_watches_until:
            raise StatusError(
                429,
                "TooManyRequests",
                "too many requests, please try again later",
                {"retryAfterSeconds": 1},
                {"Retry-After": "1"},
            )
        out = encoding.negotiate(request.headers.get("Accept", ""), q)
        namespace = t.namespace
        field_selector = q.get("fieldSelector", "")
        if t.name:
            # Legacy /watch/.../{name}: a watch of one object.
            field_selector = ",".join(s for s in (field_selector, f"metadata.name={t.name}") if s)
        bookmarks = bool(encoding.flag(q, "allowWatchBookmarks"))
        send_initial = encoding.flag(q, "sendInitialEvents")
        timeout_param = encoding.int_param(q, "timeoutSeconds")
        cfg = state.config
        timeout = (
            float(timeout_param)
            if timeout_param and timeout_param > 0
            else cfg.min_watch_timeout * (1 + random.random())
        )
        try:
            w = self.api.watch(
                t.res,
                namespace,
                label_selector=q.get("labelSelector", ""),
                field_selector=field_selector,
                resource_version=q.get("resourceVersion", ""),
                resource_version_match=q.get("resourceVersionMatch", ""),
                send_initial_events=send_initial,
                allow_bookmarks=bookmarks,
            )
        except StatusError as e:
            if e.code == 410:
                return await watchstream.serve_error(request, e.status())
            raise
        enc = watchstream.EventEncoder(t.res, out, self.api.clock)
        params = watchstream.WatchParams(
            timeout=timeout,
            bookmarks=bookmarks,
            initial_events_end=bool(send_initial),
            bookmark_interval=cfg.bookmark_interval,
        )
        return await watchstream.serve(request, state.store, w, enc, params)


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    resp = await handler(request)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s %s %d %.1fms",
            request.method,
            request.path_qs,
            resp.status,
            (time.perf_counter() - start) * 1000,
        )
    return resp


def build_app(config: Config, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The API server as an aiohttp application (tests run it in-process)."""
    app = web.Application(middlewares=[_log_requests], client_max_size=64 * 1024 * 1024)
    state = ApiServerState(config, clock=clock)
    app[STATE_KEY] = state
    routes = Routes(state)
    app.router.add_route("*", "/{tail:.*}", routes.dispatch)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    async def on_shutdown(app: web.Application) -> None:
        state.close_watches()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return app
