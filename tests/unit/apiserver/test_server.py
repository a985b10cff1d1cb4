"""The HTTP layer in-process (aiohttp TestServer): discovery, OpenAPI, verbs, content
negotiation, watch streams with bookmarks/410/selectors, debug endpoints, and a
kubernetes-asyncio client consuming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from weir_local.apiserver.config import Config
from weir_local.apiserver.server import STATE_KEY, build_app

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "img"}]},
    }


@pytest.fixture
async def app() -> web.Application:
    return build_app(Config(bookmark_interval=0.3))


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(app)) as c:
        yield c


async def create(
    client: TestClient[Any, Any], obj: dict[str, Any], path: str = PODS
) -> dict[str, Any]:
    r = await client.post(path, json=obj)
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def lines(r: ClientResponse, n: int, timeout: float = 5) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        line = await asyncio.wait_for(r.content.readline(), timeout)
        if not line:
            break
        out.append(orjson.loads(line))
    return out


# ---- discovery and OpenAPI -------------------------------------------------------------------


async def test_legacy_and_aggregated_discovery(client: TestClient[Any, Any]) -> None:
    r = await client.get("/api")
    assert (await r.json())["versions"] == ["v1"]
    r = await client.get("/api/v1")
    pods = next(x for x in (await r.json())["resources"] if x["name"] == "pods")
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert pods["namespaced"] and "watch" in pods["verbs"]
    r = await client.get("/apis/networking.k8s.io/v1")
    np = (await r.json())["resources"][0]
    assert np["name"] == "networkpolicies" and np["shortNames"] == ["netpol"]
    r = await client.get("/apis", headers={"Accept": AGGREGATED})
    assert r.headers["Content-Type"] == (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    groups = {g["metadata"]["name"] for g in (await r.json())["items"]}
    assert groups == {"discovery.k8s.io", "networking.k8s.io"}
    r = await client.get("/api", headers={"Accept": AGGREGATED})
    (core,) = (await r.json())["items"]
    res = {x["resource"]: x for x in core["versions"][0]["resources"]}
    assert res["pods"]["scope"] == "Namespaced" and res["nodes"]["scope"] == "Cluster"
    subs = {s["subresource"] for s in res["pods"]["subresources"]}
    assert subs == {"status", "binding"}
    assert (await (await client.get("/version")).json())["minor"] == "35"
    for path in ("/healthz", "/livez", "/readyz"):
        assert (await client.get(path)).status == 200


async def test_openapi_v3_lets_kubectl_find_field_validation(client: TestClient[Any, Any]) -> None:
    root = await (await client.get("/openapi/v3")).json()
    url = root["paths"]["apis/networking.k8s.io/v1"]["serverRelativeURL"]
    doc = await (await client.get(url)).json()
    patches = [op["patch"] for op in doc["paths"].values() if "patch" in op]
    assert patches
    for op in patches:
        gvk = op["x-kubernetes-group-version-kind"]
        assert gvk == {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"}
        assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
    assert (await client.get("/openapi/v2")).status == 404


# ---- verbs and content ----------------------------------------------------------------------


async def test_create_get_list_and_table(client: TestClient[Any, Any]) -> None:
    made = await create(client, pod("a", {"app": "web"}))
    assert list(made)[:3] == ["apiVersion", "kind", "metadata"]
    r = await client.get(f"{PODS}/a")
    assert (await r.json())["metadata"]["uid"] == made["metadata"]["uid"]
    r = await client.get("/api/v1/pods?labelSelector=app%3Dweb")
    body = await r.json()
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in body["items"]] == ["a"]
    r = await client.get(PODS, headers={"Accept": TABLE})
    table = await r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name", "Ready", "Status", "Restarts", "Age",
    ]  # fmt: skip
    assert table["rows"][0]["cells"][:3] == ["a", "0/1", "Pending"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    r = await client.get(f"{PODS}/a?includeObject=Object", headers={"Accept": TABLE})
    assert (await r.json())["rows"][0]["object"]["kind"] == "Pod"
    r = await client.get(f"{PODS}/missing")
    assert r.status == 404
    assert (await r.json()) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "missing" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "missing", "group": "", "kind": "pods"},
    }


async def test_yaml_body_paging_and_unknown_paths(client: TestClient[Any, Any]) -> None:
    r = await client.post(
        PODS,
        data=b"apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {containers: [{name: c, image: i}]}\n",  # noqa: E501
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status == 201
    for i in range(3):
        await create(client, pod(f"p{i}"))
    r = await client.get(f"{PODS}?limit=2")
    first = await r.json()
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 2
    r = await client.get(f"{PODS}?limit=2&continue={first['metadata']['continue']}")
    second = await r.json()
    names = [i["metadata"]["name"] for i in first["items"] + second["items"]]
    assert names == ["p0", "p1", "p2", "y"] and "continue" not in second["metadata"]
    assert (await client.get("/api/v1/widgets")).status == 404
    assert (await client.get("/apis/nope.example.com/v1")).status == 404


async def test_field_validation_dry_run_and_patch_types(client: TestClient[Any, Any]) -> None:
    body = pod("a")
    body["spec"]["foo"] = 1
    r = await client.post(f"{PODS}?fieldValidation=Strict", json=body)
    assert r.status == 400
    assert (await r.json())["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.foo"'
    )
    r = await client.post(f"{PODS}?dryRun=All", json=body)
    assert r.status == 201
    assert r.headers.getall("Warning") == ['299 - "unknown field \\"spec.foo\\""']
    assert (await client.get(f"{PODS}/a")).status == 404
    await create(client, pod("a"))
    for ctype, patch in [
        ("application/merge-patch+json", {"metadata": {"labels": {"m": "1"}}}),
        ("application/strategic-merge-patch+json", {"metadata": {"labels": {"s": "1"}}}),
        (
            "application/json-patch+json",
            [{"op": "add", "path": "/metadata/labels/j", "value": "1"}],
        ),
    ]:
        r = await client.patch(
            f"{PODS}/a", data=orjson.dumps(patch), headers={"Content-Type": ctype}
        )
        assert r.status == 200, await r.text()
    assert (await (await client.get(f"{PODS}/a")).json())["metadata"]["labels"] == {
        "m": "1", "s": "1", "j": "1",
    }  # fmt: skip
    r = await client.patch(
        f"{PODS}/a", data=b"{}", headers={"Content-Type": "application/apply-patch+yaml"}
    )
    assert r.status == 415 and "server-side apply" in (await r.json())["message"]


async def test_delete_collection_and_graceful_delete_over_http(
    client: TestClient[Any, Any],
) -> None:
    for i in range(3):
        await create(client, pod(f"p{i}", {"batch": "1" if i < 2 else "2"}))
    r = await client.delete(f"{PODS}?labelSelector=batch%3D1")
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["p0", "p1"]
    left = await (await client.get(PODS)).json()
    assert [i["metadata"]["name"] for i in left["items"]] == ["p2"]
    bound = pod("g")
    bound["spec"]["nodeName"] = "n1"
    await create(client, bound)
    r = await client.delete(f"{PODS}/g", json={"kind": "DeleteOptions", "gracePeriodSeconds": 60})
    assert (await r.json())["metadata"]["deletionGracePeriodSeconds"] == 60
    r = await client.delete(f"{PODS}/g?gracePeriodSeconds=0")
    assert (await r.json())["kind"] == "Status"
    assert (await client.get(f"{PODS}/g")).status == 404


# ---- watch -------------------------------------------------------------------------------------


async def test_watch_streams_changes_after_a_resource_version(client: TestClient[Any, Any]) -> None:
    a = await create(client, pod("a"))
    rv = a["metadata"]["resourceVersion"]
    await create(client, pod("b"))
    r = await client.get(f"{PODS}?watch=True&resourceVersion={rv}&timeoutSeconds=5")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    (ev,) = await lines(r, 1)
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "b"
    await client.delete(f"{PODS}/a")
    (ev,) = await lines(r, 1)
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["name"] == "a"
    assert int(ev["object"]["metadata"]["resourceVersion"]) > int(rv)
    r.close()


async def test_watch_from_zero_sends_current_objects(client: TestClient[Any, Any]) -> None:
    await create(client, pod("a"))
    r = await client.get(f"{PODS}?watch=1&resourceVersion=0&timeoutSeconds=5")
    (ev,) = await lines(r, 1)
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "a"
    r.close()


async def test_too_old_watch_is_one_error_event_on_a_200(client: TestClient[Any, Any]) -> None:
    a = await create(client, pod("a"))
    await create(client, pod("b"))
    r = await client.post("/debug/weir/compact")
    assert r.status == 200
    r = await client.get(f"{PODS}?watch=true&resourceVersion={a['metadata']['resourceVersion']}")
    assert r.status == 200
    events = await lines(r, 5)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith(
        f"too old resource version: {a['metadata']['resourceVersion']} ("
    )


async def test_bookmarks_while_idle_and_before_timeout(client: TestClient[Any, Any]) -> None:
    a = await create(client, pod("a"))
    rv = a["metadata"]["resourceVersion"]
    r = await client.get(
        f"{PODS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    events = await lines(r, 100, timeout=3)
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert 2 <= len(events) <= 6  # every 0.3 s of idleness, and one at the end
    assert events[-1]["object"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv},
    }


async def test_send_initial_events_ends_with_an_annotated_bookmark(
    client: TestClient[Any, Any],
) -> None:
    await create(client, pod("a"))
    await create(client, pod("b"))
    q = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5"  # noqa: E501
    r = await client.get(f"{PODS}?{q}")
    events = await lines(r, 3)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    r.close()
    r = await client.get(f"{PODS}?watch=true&sendInitialEvents=true")
    assert r.status == 422


async def test_selector_watch_sees_objects_enter_and_leave(client: TestClient[Any, Any]) -> None:
    a = await create(client, pod("a", {"app": "web"}))
    rv = a["metadata"]["resourceVersion"]
    r = await client.get(
        f"{PODS}?watch=true&labelSelector=app%3Dweb&resourceVersion={rv}&timeoutSeconds=5"
    )
    merge = {"Content-Type": "application/merge-patch+json"}
    await client.patch(f"{PODS}/a", data=b'{"metadata":{"labels":{"app":"db"}}}', headers=merge)
    await client.patch(f"{PODS}/a", data=b'{"metadata":{"labels":{"app":"web"}}}', headers=merge)
    events = await lines(r, 2)
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[0]["object"]["metadata"]["labels"] == {"app": "web"}  # last matching content
    r.close()


async def test_table_watch_events(client: TestClient[Any, Any]) -> None:
    a = await create(client, pod("a"))
    r = await client.get(
        f"{PODS}?watch=true&resourceVersion={a['metadata']['resourceVersion']}&timeoutSeconds=5",
        headers={"Accept": TABLE},
    )
    await create(client, pod("b"))
    await create(client, pod("c"))
    first, second = await lines(r, 2)
    assert first["object"]["kind"] == "Table" and "columnDefinitions" in first["object"]
    assert first["object"]["rows"][0]["cells"][0] == "b"
    assert "columnDefinitions" not in second["object"]
    r.close()


async def test_drop_watches_closes_streams_and_refuses_for_a_while(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    r = await client.get(f"{PODS}?watch=true&timeoutSeconds=30")
    await asyncio.sleep(0.1)
    assert app[STATE_KEY].store.watcher_count() == 1
    d = await client.post("/debug/weir/drop-watches?refuseSeconds=1")
    assert (await d.json())["closedWatches"] == 1
    assert await asyncio.wait_for(r.content.read(), 3) == b""  # the stream ended
    refused = await client.get(f"{PODS}?watch=true")
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    await asyncio.sleep(1.1)
    ok = await client.get(f"{PODS}?watch=true&timeoutSeconds=1")
    assert ok.status == 200
    ok.close()


async def test_kubernetes_asyncio_lists_and_watches(client: TestClient[Any, Any]) -> None:
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio import watch

    await create(client, pod("a"))
    host = f"http://{client.server.host}:{client.server.port}"
    async with k8s.ApiClient(k8s.Configuration(host=host)) as api:
        v1 = k8s.CoreV1Api(api)
        listed = await v1.list_pod_for_all_namespaces()
        assert [p.metadata.name for p in listed.items] == ["a"]
        w = watch.Watch()
        seen: list[tuple[str, str]] = []

        async def change() -> None:
            await asyncio.sleep(0.2)
            await create(client, pod("b"))

        task = asyncio.create_task(change())
        async for ev in w.stream(
            v1.list_pod_for_all_namespaces,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=3,
        ):
            seen.append((ev["type"], ev["object"].metadata.name))
            w.stop()
        await task
        assert seen == [("ADDED", "b")]
