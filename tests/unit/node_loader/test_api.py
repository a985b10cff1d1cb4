"""The endpoint API on its unix socket, over a manager on the fake kernel: the contract's
statuses and bodies (weir.endpoint_api)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from weir.endpoint_api import EndpointRequest
from weir_node_loader.api import EndpointApi
from weir_node_loader.kernel import KernelError
from weir_node_loader.manager import EndpointManager, PolicyUnavailable
from weir_node_loader.metrics import Metrics

from tests.unit.node_loader.fakes import NODE, FakeKernel, FakeStore, request


class Client:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        async with self.session.request(method, f"http://node-loader{path}", data=data) as r:
            return r.status, json.loads(await r.read())


@pytest.fixture
async def served(
    tmp_path: Path,
) -> AsyncIterator[tuple[Client, EndpointApi, FakeKernel, FakeStore]]:
    kernel, store = FakeKernel(), FakeStore()
    kernel.add_veth(10, "wrc1")
    api = EndpointApi(NODE)
    socket = tmp_path / "run" / "nl.sock"
    await api.start(socket)
    api.manager = EndpointManager(
        node=NODE, kernel=kernel, store=store, metrics=Metrics(CollectorRegistry())
    )
    connector = aiohttp.UnixConnector(path=str(socket))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Client(session), api, kernel, store
    await api.stop()
    assert not socket.exists()


def body(req: EndpointRequest) -> dict[str, Any]:
    return asdict(req)


async def test_everything_is_503_until_the_first_reconcile(served: Any) -> None:
    client, api, *_ = served
    for method, path in (
        ("GET", "/v1/healthz"),
        ("GET", "/v1/endpoints"),
        ("DELETE", "/v1/endpoints/c1"),
    ):
        status, doc = await client.call(method, path)
        assert status == 503 and "not loaded" in doc["error"]
    await api.manager.reconcile()
    assert await client.call("GET", "/v1/healthz") == (200, {"ready": True, "node": NODE})


async def test_put_get_list_delete(served: Any) -> None:
    client, api, kernel, store = served
    await api.manager.reconcile()
    status, doc = await client.call("PUT", "/v1/endpoints/c1", body(request()))
    assert status == 200 and doc["host_ifindex"] == 10 and doc["node"] == NODE
    assert doc["counters"] == {
        "from_pod": {"packets": 0, "bytes": 0},
        "to_pod": {"packets": 0, "bytes": 0},
    }
    kernel.count(10, 3)
    status, doc = await client.call("GET", "/v1/endpoints/c1")
    assert status == 200 and doc["counters"]["from_pod"] == {"packets": 3, "bytes": 300}
    status, doc = await client.call("GET", "/v1/endpoints")
    assert [e["container_id"] for e in doc["endpoints"]] == ["c1"]
    assert await client.call("DELETE", "/v1/endpoints/c1") == (
        200,
        {"container_id": "c1", "deleted": True},
    )
    assert await client.call("DELETE", "/v1/endpoints/c1") == (
        200,
        {"container_id": "c1", "deleted": False},
    )
    status, doc = await client.call("GET", "/v1/endpoints/c1")
    assert status == 404 and "no endpoint c1" in doc["error"]
    assert store.data == {}


@pytest.mark.parametrize(
    ("path", "payload", "message"),
    [
        ("/v1/endpoints/c1", b"{not json", "not JSON"),
        ("/v1/endpoints/c1", {"container_id": "c1"}, "pod_namespace is required"),
        ("/v1/endpoints/c1", {**body(request()), "extra": 1}, "unknown fields: extra"),
        (
            "/v1/endpoints/c1",
            {**body(request()), "host_ifindex": "10"},
            "host_ifindex must be a int",
        ),
        ("/v1/endpoints/c2", body(request()), "differs from 'c2' in the path"),
        ("/v1/endpoints/c1", body(request(ip="10.244.1.999")), "not an IPv4 address"),
        ("/v1/endpoints/c1", body(request(host_ifindex=77)), "not in the node's network namespace"),
        ("/v1/endpoints/bad*id", body(request()), "container_id"),
        ("/v1/endpoints/c1", b"x" * 70000, "larger than"),
    ],
)
async def test_bad_requests_are_clear_400s(
    served: Any, path: str, payload: Any, message: str
) -> None:
    client, api, kernel, _ = served
    await api.manager.reconcile()
    status, doc = await client.call("PUT", path, payload)
    assert status == 400 and message in doc["error"], doc
    assert kernel.entries == {}


async def test_kernel_failures_are_500_and_kv_failures_503(served: Any) -> None:
    client, api, kernel, store = served
    await api.manager.reconcile()
    kernel.fail["attach"] = KernelError("netlink", "Operation not permitted")
    status, doc = await client.call("PUT", "/v1/endpoints/c1", body(request()))
    assert status == 500 and "could not be programmed" in doc["error"]
    del kernel.fail["attach"]
    store.down = True
    status, doc = await client.call("PUT", "/v1/endpoints/c1", body(request()))
    assert status == 503 and "KV weir-endpoints" in doc["error"]


class NoPolicy:
    """A policy gate whose policy never arrives."""

    async def wait_for(self, namespace: str, name: str, uid: str, seconds: float) -> object:
        raise PolicyUnavailable(f"no policy for {namespace}/{name} (uid {uid}) after {seconds}s")

    def remember(self, record: object, uid: str) -> None: ...

    def forget(self, container_id: str) -> None: ...

    async def realize(self, record: object) -> bool:
        return False


async def test_a_pod_whose_policy_does_not_arrive_is_a_503_and_nothing_is_programmed(
    served: Any,
) -> None:
    client, api, kernel, store = served
    api.manager.policy = NoPolicy()
    await api.manager.reconcile()
    status, doc = await client.call("PUT", "/v1/endpoints/c1", body(request(pod_uid="u-1")))
    assert status == 503 and "no policy for default/pod-c1 (uid u-1)" in doc["error"]
    assert kernel.entries == {} and kernel.hooks == {} and store.data == {}
