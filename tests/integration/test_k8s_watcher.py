"""k8s-watcher end to end: real API server, real kubectl, real nats-server, real watcher process.

The invariant under test is the watcher's whole job: KV weir-k8s equals the API's state,
object for object, after any sequence of changes — including a crash mid-stream, changes
while it is down, and a 410 that forces a relist.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from weir import catalog
from weir.bus import CaughtUp, KvBucket
from weir.codec import Codec
from weir_k8s_watcher.informer import KINDS
from weir_k8s_watcher.normalize import normalize

from tests.support.otlp import OtlpReceiver
from tests.support.processes import ApiServer, NatsServer, Service

pytestmark = pytest.mark.integration

CODEC = Codec(catalog.K8S_SCHEMA)
PATHS = {
    "Namespace": "/api/v1/namespaces",
    "Node": "/api/v1/nodes",
    "Pod": "/api/v1/pods",
    "Service": "/api/v1/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/endpointslices",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/networkpolicies",
}


@pytest.fixture
def watcher(tmp_path: Path, nats_server: NatsServer, api: ApiServer) -> Iterator[Service]:
    svc = Service(
        "k8s-watcher", tmp_path, nats_server, env={"WEIR_KUBECONFIG": str(api.kubeconfig)}
    )
    svc.start_ready()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(api.url) as session:
        yield session


# --- the invariant ----------------------------------------------------------------------------


async def api_state(http: aiohttp.ClientSession) -> dict[str, bytes]:
    """Every object in the API, normalized and encoded exactly as the watcher would."""
    out: dict[str, bytes] = {}
    for kind in (k.kind for k in KINDS):
        async with http.get(PATHS[kind]) as r:
            assert r.status == 200, await r.text()
            for item in (await r.json())["items"]:
                model = normalize(kind, item)
                out[catalog.k8s_key_of(model)] = CODEC.encode(model)
    return out


async def kv_state(url: str) -> dict[str, bytes]:
    nc = await nats.connect(url)
    try:
        kv = KvBucket(nc.jetstream(), catalog.K8S.name)
        out: dict[str, bytes] = {}
        async for item in kv.watch():
            if isinstance(item, CaughtUp):
                return out
            assert item.value is not None
            out[item.key] = item.value
        return out
    finally:
        await nc.close()


async def assert_converges(
    http: aiohttp.ClientSession, nats_url: str, timeout: float = 60
) -> dict[str, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        want, have = await api_state(http), await kv_state(nats_url)
        if want == have:
            return have
        if time.monotonic() > deadline:
            missing = sorted(set(want) - set(have))[:5]
            extra = sorted(set(have) - set(want))[:5]
            stale = sorted(k for k in set(want) & set(have) if want[k] != have[k])[:5]
            pytest.fail(
                f"KV != API after {timeout}s: missing {missing}, leftovers {extra}, stale {stale}"
            )
        await asyncio.sleep(0.3)


# --- object factories -------------------------------------------------------------------------


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"ns": name}},
    }


def pod(ns: str, name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name, **labels}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "weir/agnhost",
                    "ports": [
                        {"name": "serve-80-tcp", "containerPort": 80},
                        {"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"},
                    ],
                }
            ]
        },
    }


def service(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"svc": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "serve-80-tcp"}],
        },
    }


def policy(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"pod": name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"ns": ns}}}],
                    "ports": [{"port": 80}],
                }
            ],
        },
    }


def node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]},
    }


def collection(obj: dict[str, Any]) -> str:
    kind, meta = obj["kind"], obj["metadata"]
    base = PATHS[kind]
    if kind in ("Namespace", "Node"):
        return base
    head, _, plural = base.rpartition("/")
    return f"{head}/namespaces/{meta['namespace']}/{plural}"


async def create(http: aiohttp.ClientSession, obj: dict[str, Any]) -> None:
    async with http.post(collection(obj), json=obj) as r:
        assert r.status == 201, await r.text()


async def patch_labels(
    http: aiohttp.ClientSession, obj: dict[str, Any], labels: dict[str, str | None]
) -> None:
    url = f"{collection(obj)}/{obj['metadata']['name']}"
    async with http.patch(
        url,
        json={"metadata": {"labels": labels}},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as r:
        assert r.status == 200, await r.text()


async def delete(http: aiohttp.ClientSession, obj: dict[str, Any]) -> None:
    url = f"{collection(obj)}/{obj['metadata']['name']}"
    async with http.delete(url, json={"gracePeriodSeconds": 0}) as r:
        assert r.status in (200, 202), await r.text()


async def bounded_gather(coros: list[Any], limit: int = 32) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


def yaml_stream(objs: list[dict[str, Any]]) -> str:
    return "\n---\n".join(json.dumps(o) for o in objs)


# --- tests ------------------------------------------------------------------------------------


async def test_mirrors_every_kind_and_follows_changes(
    api: ApiServer, watcher: Service, nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    objs = [
        namespace("x"),
        pod("x", "a", svc="web"),
        service("x", "web"),
        policy("x", "a"),
        node("node-9"),
    ]
    api.kubectl("apply", "-f", "-", input=yaml_stream(objs))
    state = await assert_converges(http, nats_server.url)
    assert {"namespace.x", "pod.x.a", "service.x.web", "networkpolicy.x.a", "node.node-9"} <= set(
        state
    )
    assert any(k.startswith("endpointslice.x.web-") for k in state)  # made by the API server
    api.kubectl("label", "pod", "a", "-n", "x", "tier=front")
    state = await assert_converges(http, nats_server.url)
    model = CODEC.decode(state["pod.x.a"])
    assert model.meta.labels["tier"] == "front"
    api.kubectl("delete", "networkpolicy", "a", "-n", "x")
    state = await assert_converges(http, nats_server.url)
    assert "networkpolicy.x.a" not in state
    assert watcher.metric("weir_k8s_watcher_events_total", kind="Pod") >= 2


async def test_a_thousand_objects_through_kubectl_and_the_api(
    api: ApiServer, watcher: Service, nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    namespaces = [namespace(f"ns{i}") for i in range(10)]
    via_kubectl = [pod(f"ns{i % 10}", f"k{i}") for i in range(400)] + [
        policy(f"ns{i % 10}", f"k{i}") for i in range(100)
    ]
    via_api = (
        [pod(f"ns{i % 10}", f"p{i}", svc=f"s{i % 50}") for i in range(300)]
        + [service(f"ns{i % 10}", f"s{i}") for i in range(100)]
        + [policy(f"ns{i % 10}", f"p{i}") for i in range(100)]
    )
    assert len(via_kubectl) + len(via_api) == 1000
    api.kubectl("apply", "-f", "-", input=yaml_stream(namespaces))
    api.kubectl("apply", "-f", "-", input=yaml_stream(via_kubectl), timeout=300)
    await bounded_gather([create(http, o) for o in via_api])
    await assert_converges(http, nats_server.url)

    # Update all 1,000: half by kubectl label, half by merge patch through the API.
    for ns in range(10):
        api.kubectl(
            "label", "pods,networkpolicies", "-n", f"ns{ns}", "-l", "pod", "round=2", "--overwrite"
        )
    await bounded_gather(
        [patch_labels(http, o, {"round": "2", "svc": None}) for o in via_api if o["kind"] != "Pod"]
        + [patch_labels(http, o, {"round": "2"}) for o in via_api if o["kind"] == "Pod"]
    )
    state = await assert_converges(http, nats_server.url)
    assert CODEC.decode(state["pod.ns3.k3"]).meta.labels["round"] == "2"

    # Delete 600: 200 with kubectl, 400 through the API.
    for ns in range(10):
        names = [
            o["metadata"]["name"]
            for o in via_kubectl[:200]
            if o["metadata"]["namespace"] == f"ns{ns}"
        ]
        api.kubectl("delete", "pods", "-n", f"ns{ns}", "--grace-period=0", "--wait=false", *names)
    await bounded_gather([delete(http, o) for o in via_api])
    state = await assert_converges(http, nats_server.url)
    assert not any(k.startswith("service.") for k in state)
    assert not any(k.startswith("endpointslice.") for k in state)
    assert sum(k.startswith("pod.") for k in state) == 200


async def test_restart_after_a_crash_mid_stream_converges_with_no_leftovers(
    api: ApiServer, watcher: Service, nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    await create(http, namespace("x"))
    pods = [pod("x", f"p{i}") for i in range(1000)]
    stream = asyncio.ensure_future(bounded_gather([create(http, p) for p in pods], limit=16))
    # Kill the watcher while the stream of creates is still running.
    while len([k for k in await kv_state(nats_server.url) if k.startswith("pod.")]) < 200:
        await asyncio.sleep(0.05)
    watcher.kill()
    assert not stream.done()
    await stream

    # While it is down: change 50, delete 50, then compact the API's history (a 410 for
    # anything resuming from before now).
    await bounded_gather([patch_labels(http, p, {"changed": "yes"}) for p in pods[:50]])
    await bounded_gather([delete(http, p) for p in pods[950:]])
    async with http.post("/debug/weir/compact") as r:
        assert r.status == 200, await r.text()

    watcher.start_ready()
    state = await assert_converges(http, nats_server.url)
    assert "pod.x.p999" not in state
    assert CODEC.decode(state["pod.x.p0"]).meta.labels["changed"] == "yes"


async def test_410_while_running_forces_a_relist(
    api: ApiServer, watcher: Service, nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    await create(http, namespace("x"))
    pods = [pod("x", f"p{i}") for i in range(20)]
    await bounded_gather([create(http, p) for p in pods])
    await assert_converges(http, nats_server.url)
    before = watcher.metric("weir_k8s_watcher_relists_total", kind="Pod", reason="expired")

    # A watch-cache outage: every watch is cut and refused for a while; the API changes
    # meanwhile and its history is compacted, so resuming from the old resourceVersion is a 410.
    async with http.post("/debug/weir/drop-watches", params={"refuseSeconds": "3"}) as r:
        assert r.status == 200, await r.text()
    await bounded_gather([delete(http, p) for p in pods[:10]])
    await create(http, pod("x", "late"))
    async with http.post("/debug/weir/compact") as r:
        assert r.status == 200
    state = await assert_converges(http, nats_server.url)
    assert "pod.x.late" in state and "pod.x.p0" not in state
    assert watcher.metric("weir_k8s_watcher_relists_total", kind="Pod", reason="expired") > before


async def test_an_invalid_policy_gets_a_422_naming_the_field_and_never_reaches_nats(
    api: ApiServer, watcher: Service, nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    await create(http, namespace("x"))
    await assert_converges(http, nats_server.url)
    nc = await nats.connect(nats_server.url)
    seen: list[str] = []

    async def on_msg(msg: Any) -> None:
        seen.append(msg.subject)

    await nc.subscribe("$KV.weir-k8s.networkpolicy.>", cb=on_msg)
    bad = policy("x", "bad")
    bad["spec"]["ingress"][0]["from"] = [{"ipBlock": {"cidr": "10.0.0.0/33"}}]
    result = api.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode == 1
    assert 'The NetworkPolicy "bad" is invalid' in result.stderr
    assert "spec.ingress[0].from[0].ipBlock.cidr" in result.stderr
    async with http.get("/apis/networking.k8s.io/v1/namespaces/x/networkpolicies/bad") as r:
        assert r.status == 404
    # A valid policy applied afterwards arrives; the invalid one never did.
    api.kubectl("apply", "-f", "-", input=json.dumps(policy("x", "good")))
    deadline = time.monotonic() + 20
    while "$KV.weir-k8s.networkpolicy.x.good" not in seen and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await nc.close()
    assert seen == ["$KV.weir-k8s.networkpolicy.x.good"]


async def test_garbage_in_the_bucket_is_reported_and_repaired(
    api: ApiServer, nats_server: NatsServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await create(http, namespace("x"))
    await create(http, pod("x", "a"))
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    kv = await KvBucket.ensure(js, catalog.K8S.name)
    await kv.put("pod.x.a", b"\x00garbage")  # a key the API has, with a bad value
    await kv.put("pod.x.ghost", b"\x00garbage")  # a key the API does not have
    await nc.close()
    svc = Service(
        "k8s-watcher", tmp_path, nats_server, env={"WEIR_KUBECONFIG": str(api.kubeconfig)}
    )
    svc.start_ready()
    try:
        state = await assert_converges(http, nats_server.url)
        assert "pod.x.ghost" not in state and CODEC.decode(state["pod.x.a"]).meta.name == "a"
        assert svc.metric("weir_bus_decode_errors_total", reason="malformed") == 2
        assert "skipping undecodable value in weir-k8s key pod.x.ghost" in svc.log.read_text()
    finally:
        svc.stop()


async def test_ready_only_after_the_initial_sync_and_traces_reach_the_collector(
    api: ApiServer, nats_server: NatsServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    api.stop()  # the API is down: the watcher must not claim to be caught up
    svc = Service(
        "k8s-watcher",
        tmp_path,
        nats_server,
        env={
            "WEIR_KUBECONFIG": str(api.kubeconfig),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        },
    )
    svc.start()
    try:
        # Wait until it answers at all (a loaded machine may take seconds to start it), and
        # give its informers time to try the API: it must still not claim to be ready.
        svc.wait_ready(lambda: _answers(svc), timeout=60)
        await asyncio.sleep(2)
        async with aiohttp.ClientSession() as s, s.get(svc.readyz) as r:
            assert r.status == 503
            assert "[-]sync" in await r.text()
        api.start()
        svc.wait_ready(lambda: _ready(svc), timeout=60)
        async with aiohttp.ClientSession(api.url) as h:
            await create(h, namespace("traced"))
        state = await assert_converges(http, nats_server.url)
        assert "namespace.traced" in state
        nc = await nats.connect(nats_server.url)
        entry = await KvBucket(nc.jetstream(), catalog.K8S.name).get("namespace.traced")
        await nc.close()
        assert entry is not None
        trace_id = entry.headers["traceparent"].split("-")[1]
        spans = await receiver.wait_for(
            lambda s: s.name == "k8s ADDED Namespace" and s.trace_id == trace_id, timeout=20
        )
        assert spans[0].service == "weir-k8s-watcher"
        assert spans[0].attributes["k8s.name"] == "traced"
    finally:
        svc.stop()
        await receiver.stop()


def _answers(svc: Service) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(svc.readyz, timeout=2)
    except urllib.error.HTTPError:
        return True  # 503 is an answer
    except OSError:
        return False
    return True


def _ready(svc: Service) -> bool:
    from tests.support.processes import http_ok

    return http_ok(svc.readyz)


async def test_wait_converged_returns_only_once_every_earlier_change_is_in_kv(
    api: ApiServer,
    watcher: Service,
    nats_server: NatsServer,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    import subprocess

    from tests.support.processes import VENV_BIN

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "weir"), "status", "--nats-url", nats_server.url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Without the other pipeline stages running, the dataplane cannot be converged.
    missing = status("--wait-converged", "--timeout", "3")
    assert missing.returncode == 1 and "not running" in missing.stdout
    others = [
        Service(name, tmp_path, nats_server)
        for name in ("identity-allocator", "policy-compiler", "lb-programmer", "bandwidth-manager")
    ]
    for svc in others:
        svc.start_ready()
    try:
        await create(http, namespace("x"))
        await bounded_gather([create(http, pod("x", f"p{i}")) for i in range(200)])
        done = status("--wait-converged", "--timeout", "60")
        assert done.returncode == 0, done.stdout + done.stderr
        state = await kv_state(nats_server.url)  # read right after: no waiting allowed
        assert sum(k.startswith("pod.x.") for k in state) == 200
        assert "k8s-watcher" in done.stdout and "converged in" in done.stdout
    finally:
        for svc in others:
            svc.stop()
