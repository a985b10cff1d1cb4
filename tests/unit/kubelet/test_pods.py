"""The pod controller with a fake API client and a fake sandbox runtime: what it does, in
which order, and what it writes (or does not write) for each situation."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from weir_local.kubelet.apiclient import ApiError
from weir_local.kubelet.cni import CniError
from weir_local.kubelet.core import Action, PodInfo, SandboxView, Stage
from weir_local.kubelet.metrics import Metrics
from weir_local.kubelet.pods import PodController
from weir_local.kubelet.sandbox import NetworkNotReady, SandboxRecord

Obj = dict[str, Any]


class FakeRuntime:
    def __init__(self) -> None:
        self.records: dict[str, SandboxRecord] = {}
        self.servers: dict[str, object] = {}
        self.orphans: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.fail_setup: Exception | None = None
        self.fail_check: Exception | None = None
        self.next_ip = 2

    async def scan(self) -> set[str]:
        return set(self.records) | self.orphans

    def view(self, uid: str, *, bound_here: bool = False) -> SandboxView:
        rec = self.records.get(uid)
        if rec is None:
            return SandboxView(stage=Stage.ORPHAN) if uid in self.orphans else SandboxView()
        return SandboxView(stage=rec.stage, serving=uid in self.servers)

    def _ready(self, info: PodInfo) -> None:
        ip = f"10.244.1.{self.next_ip}"
        self.next_ip += 1
        self.records[info.uid] = SandboxRecord(
            uid=info.uid,
            namespace=info.namespace,
            name=info.name,
            netns=f"pre-{info.uid}",
            created=100.0,
            stage=Stage.READY,
            result={"ips": [{"address": f"{ip}/32"}]},
            ready_at=101.0,
        )

    async def setup(self, info: PodInfo) -> None:
        self.log.append(("setup", info.uid))
        if self.fail_setup is not None:
            raise self.fail_setup
        self._ready(info)
        self.servers[info.uid] = object()

    async def adopt(self, info: PodInfo) -> None:
        self.log.append(("adopt", info.uid))
        if self.fail_check is not None:
            raise self.fail_check
        self.servers[info.uid] = object()

    async def teardown(self, uid: str) -> None:
        self.log.append(("teardown", uid))
        self.servers.pop(uid, None)
        self.records.pop(uid, None)
        self.orphans.discard(uid)


class FakeClient:
    """Applies status patches to its copy of each pod, records every call."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log
        self.pods: dict[str, Obj] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.events: dict[str, Obj] = {}
        self.rv = 100

    async def patch(self, path: str, body: Obj, **_: Any) -> Obj:
        self.calls.append(("PATCH", path, body))
        if "/events/" in path:
            self.events[path.rsplit("/", 1)[1]].update(body)
            return {}
        name = path.split("/")[-2]
        self.log.append(("status", name))
        pod = self.pods[name]
        for k, v in body["status"].items():
            if v is None:
                pod["status"].pop(k, None)
            else:
                pod["status"][k] = v
        self.rv += 1
        pod["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(pod)

    async def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        self.calls.append(("DELETE", path, body))
        self.log.append(("delete", path.rsplit("/", 1)[1]))
        return {}

    async def create(self, path: str, body: Obj) -> Obj:
        self.calls.append(("POST", path, body))
        name = body["metadata"]["name"]
        self.events[name] = body
        return body


def pod(name: str, uid: str, **meta: Any) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "generation": 1,
            "resourceVersion": "1",
            **meta,
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "image": "img", "ports": [{"containerPort": 80}]}],
        },
        "status": {"phase": "Pending"},
    }


def controller() -> tuple[PodController, FakeRuntime, FakeClient]:
    runtime = FakeRuntime()
    client = FakeClient(runtime.log)
    c = PodController(
        node_name="n1",
        host_ip="172.18.0.2",
        client=client,  # type: ignore[arg-type]
        runtime=runtime,  # type: ignore[arg-type]
        metrics=Metrics(),
        workers=2,
        resync=3600,
        clock=lambda: 200.0,
    )
    return c, runtime, client


def listed(c: PodController, client: FakeClient, *pods: Obj) -> None:
    for p in pods:
        client.pods[p["metadata"]["name"]] = copy.deepcopy(p)
    c.replaced([copy.deepcopy(p) for p in pods])


def events(client: FakeClient) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in client.events.values()]


async def test_a_new_pod_gets_a_sandbox_and_one_status_write() -> None:
    c, runtime, client = controller()
    listed(c, client, pod("web", "u1"))
    assert await c.reconcile("u1") is Action.SETUP
    assert runtime.log == [("setup", "u1"), ("status", "web")]
    st = client.pods["web"]["status"]
    assert st["phase"] == "Running" and st["podIP"] == "10.244.1.2"
    assert st["startTime"] == "1970-01-01T00:01:40Z"  # the record's creation time
    # The write's response is remembered: reconciling again writes nothing.
    assert await c.reconcile("u1") is Action.NONE
    assert runtime.log == [("setup", "u1"), ("status", "web")]


async def test_nothing_is_torn_down_before_the_first_list() -> None:
    c, runtime, client = controller()
    runtime.orphans.add("gone-while-down")
    task = asyncio.create_task(c.run())
    try:
        await asyncio.sleep(0.05)
        assert runtime.log == []  # the API has not been read: nothing may go yet
        listed(c, client)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if runtime.log:
                break
        assert runtime.log == [("teardown", "gone-while-down")]
    finally:
        task.cancel()


async def test_graceful_deletion_order() -> None:
    c, runtime, client = controller()
    listed(c, client, pod("web", "u1"))
    await c.reconcile("u1")
    runtime.log.clear()
    deleting = copy.deepcopy(client.pods["web"])
    deleting["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:30Z"
    deleting["metadata"]["resourceVersion"] = "999"
    client.pods["web"] = copy.deepcopy(deleting)
    c.changed("MODIFIED", deleting)
    assert await c.reconcile("u1") is Action.TERMINATE
    assert runtime.log == [("status", "web"), ("teardown", "u1"), ("delete", "web")]
    ready = next(x for x in client.pods["web"]["status"]["conditions"] if x["type"] == "Ready")
    assert ready["status"] == "False"
    method, path, body = client.calls[-1]
    assert (method, path) == ("DELETE", "/api/v1/namespaces/ns/pods/web")
    assert body["gracePeriodSeconds"] == 0 and body["preconditions"] == {"uid": "u1"}
    # Our own status write comes back before the deletion does: no second DELETE.
    c.changed("MODIFIED", copy.deepcopy(client.pods["web"]))
    assert await c.reconcile("u1") is Action.NONE
    c.changed("DELETED", deleting)
    assert await c.reconcile("u1") is Action.NONE
    assert [x for x in runtime.log if x[0] == "delete"] == [("delete", "web")]


async def test_a_deleting_pod_without_sandbox_is_just_removed() -> None:
    c, runtime, client = controller()
    listed(c, client, pod("web", "u1", deletionTimestamp="2030-01-01T00:00:00Z"))
    assert await c.reconcile("u1") is Action.FINALIZE
    assert runtime.log == [("delete", "web")]


async def test_network_not_ready_waits_with_an_event_and_a_waiting_status() -> None:
    c, runtime, client = controller()
    runtime.fail_setup = NetworkNotReady("no config")
    listed(c, client, pod("web", "u1"))
    with pytest.raises(NetworkNotReady):
        await c.reconcile("u1")
    reason, message = events(client)[0]
    assert reason == "NetworkNotReady"
    assert message.startswith("network is not ready: container runtime network not ready")
    state = client.pods["web"]["status"]["containerStatuses"][0]["state"]
    assert state["waiting"]["reason"] == "ContainerCreating"


async def test_cni_failure_is_reported_like_the_kubelet_and_repeats_are_counted() -> None:
    c, runtime, client = controller()
    runtime.fail_setup = CniError(7, "no route to node-loader", plugin="weir-cni")
    listed(c, client, pod("web", "u1"))
    for _ in range(2):
        with pytest.raises(CniError):
            await c.reconcile("u1")
    assert events(client) == [
        (
            "FailedCreatePodSandBox",
            'Failed to create pod sandbox: failed to setup network for sandbox "u1": '
            'plugin type="weir-cni" failed (add): no route to node-loader',
        )
    ]
    assert next(iter(client.events.values()))["count"] == 2
    # The plugin recovers: the next retry succeeds.
    runtime.fail_setup = None
    assert await c.reconcile("u1") is Action.SETUP
    assert client.pods["web"]["status"]["phase"] == "Running"


async def test_restart_adopts_without_writing_status() -> None:
    c, runtime, client = controller()
    listed(c, client, pod("web", "u1"))
    await c.reconcile("u1")
    settled = copy.deepcopy(client.pods["web"])
    # A new kubelet process: same records, nothing served yet.
    c2, runtime2, client2 = controller()
    runtime2.records = runtime.records
    client2.pods["web"] = settled
    c2.replaced([copy.deepcopy(settled)])
    assert await c2.reconcile("u1") is Action.ADOPT
    assert runtime2.log == [("adopt", "u1")]  # no status write: nothing changed


async def test_a_broken_sandbox_is_rebuilt() -> None:
    c, runtime, client = controller()
    listed(c, client, pod("web", "u1"))
    await c.reconcile("u1")
    runtime.servers.clear()  # as after a restart
    runtime.fail_check = CniError(999, "eth0 is gone")
    assert await c.reconcile("u1") is Action.ADOPT
    # Not ready while the sandbox is made again, then ready with its new address.
    assert [x[0] for x in runtime.log[2:]] == ["adopt", "status", "teardown", "setup", "status"]
    assert ("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.") in events(
        client
    )
    assert client.pods["web"]["status"]["podIP"] == "10.244.1.3"


async def test_workers_retry_failures_with_backoff() -> None:
    c, runtime, client = controller()
    c.queue.base_delay = 0.01
    runtime.fail_setup = ApiError(500, "InternalError", "boom")
    listed(c, client, pod("web", "u1"))
    task = asyncio.create_task(c.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len([x for x in runtime.log if x[0] == "setup"]) >= 3:
                break
        assert c.queue.failures("u1") >= 2
        runtime.fail_setup = None
        for _ in range(200):
            await asyncio.sleep(0.01)
            if "u1" in runtime.servers:
                break
        assert "u1" in runtime.servers
    finally:
        task.cancel()
