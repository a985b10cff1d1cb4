"""node-loader end to end: a real process, real network namespaces, real BPF, real NATS.

Each test builds its own namespaces, wired the way weir-cni wires a pod: a node namespace with
IP forwarding and a fabric-like `eth0`, pod namespaces whose `eth0` pairs with a host-side veth
`wr…` in the node namespace carrying 169.254.1.1/32. Names are unique (`wtest-…`), pins live
under /sys/fs/bpf/weir-test-…, and everything is removed afterwards, even on failure. The
Kubernetes side is the local API server (for the taint) and KV weir-k8s written directly, as
k8s-watcher would; so are KV weir-ipcache and weir-policy (as identity-allocator and
policy-compiler would): every registration here first gets a policy (by default one that
isolates nothing), because node-loader answers a CNI ADD only once the pod's policy is in the
kernel. The policy datapath itself: test_node_loader_policy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client import CollectorRegistry
from weir import catalog
from weir.bus import BusMetrics, KvBucket, TypedKv
from weir.endpoint_api import EndpointRequest
from weir.models import DirectionPolicy, EndpointPolicy, EndpointRecord, Meta, Node, Taint
from weir_node_loader import maps
from weir_node_loader.taint import TAINT_KEY

from tests.support.processes import (
    VENV_BIN,
    ApiServer,
    NatsServer,
    Service,
    http_ok,
    require,
    wait_until,
)

pytestmark = pytest.mark.integration

NODE = "node-1"
POD_CIDR = "10.244.1.0/24"
GATEWAY = "169.254.1.1"
WEIR_ROUTE_PROTOCOL = 87


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr}")
    return result


def in_netns(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Pod:
    container_id: str
    netns: str
    ip: str
    veth: str
    ifindex: int = 0
    mac: str = ""
    host_mac: str = ""

    @property
    def name(self) -> str:
        return f"pod-{self.container_id[:6]}"

    @property
    def uid(self) -> str:
        return f"uid-{self.container_id}"

    def request(self) -> EndpointRequest:
        return EndpointRequest(
            container_id=self.container_id,
            pod_namespace="default",
            pod_name=self.name,
            pod_uid=self.uid,
            ip=self.ip,
            mac=self.mac,
            host_ifname=self.veth,
            host_ifindex=self.ifindex,
            host_mac=self.host_mac,
            netns=f"/run/netns/{self.netns}",
            ifname="eth0",
        )


class Topology:
    """A node namespace and its pods, made here and removed by `destroy`."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.node = f"wtest-nl-{self.tag}-node"
        self.namespaces: list[str] = []

    def create(self) -> None:
        ip("netns", "add", self.node)
        self.namespaces.append(self.node)
        ip("-n", self.node, "link", "set", "lo", "up")
        # The node's own address on a fabric, so routes to other nodes have a next hop: a veth
        # pair with both ends inside the node namespace stands in for the fabric bridge.
        ip("-n", self.node, "link", "add", "eth0", "type", "veth", "peer", "name", "fabric0")
        ip("-n", self.node, "addr", "add", "172.18.0.2/24", "dev", "eth0")
        ip("-n", self.node, "link", "set", "fabric0", "up")
        ip("-n", self.node, "link", "set", "eth0", "up")
        result = in_netns(self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        assert result.returncode == 0, result.stderr

    def add_pod(self, index: int) -> Pod:
        cid = uuid.uuid4().hex
        pod = Pod(cid, f"wtest-nl-{self.tag}-pod{index}", f"10.244.1.{index + 1}", f"wr{cid[:11]}")
        ip("netns", "add", pod.netns)
        self.namespaces.append(pod.netns)
        ip("-n", pod.netns, "link", "set", "lo", "up")
        # Created inside the node namespace, its peer moved straight into the pod's.
        ip("-n", self.node, "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0",
           "netns", pod.netns)  # fmt: skip
        ip("-n", self.node, "addr", "add", f"{GATEWAY}/32", "dev", pod.veth)
        ip("-n", self.node, "link", "set", pod.veth, "up")
        ip("-n", pod.netns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
        ip("-n", pod.netns, "link", "set", "eth0", "up")
        ip("-n", pod.netns, "route", "add", f"{GATEWAY}/32", "dev", "eth0", "scope", "link")
        ip("-n", pod.netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0")
        ip("-n", self.node, "route", "add", f"{pod.ip}/32", "dev", pod.veth)
        host = json.loads(ip("-j", "-n", self.node, "link", "show", pod.veth).stdout)[0]
        inner = json.loads(ip("-j", "-n", pod.netns, "link", "show", "eth0").stdout)[0]
        pod.ifindex, pod.host_mac, pod.mac = host["ifindex"], host["address"], inner["address"]
        return pod

    def remove_veth(self, pod: Pod) -> None:
        ip("-n", self.node, "link", "del", pod.veth)

    def destroy(self) -> None:
        for name in reversed(self.namespaces):
            ip("netns", "del", name, check=False)

    def filters(self, veth: str) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for hook in ("ingress", "egress"):
            r = in_netns(self.node, "tc", "-j", "filter", "show", "dev", veth, hook)
            out[hook] = [f for f in json.loads(r.stdout or "[]") if "options" in f]
        return out

    def prog_ids(self, veth: str) -> dict[str, int]:
        return {
            hook: int(fs[0]["options"]["prog"]["id"])
            for hook, fs in self.filters(veth).items()
            if fs
        }

    def has_clsact(self, veth: str) -> bool:
        r = ip("-j", "-n", self.node, "qdisc", "show", "dev", veth, check=False)
        return any(q.get("kind") == "clsact" for q in json.loads(r.stdout or "[]"))

    def ping(self, pod: Pod, target: str = GATEWAY, count: int = 3) -> None:
        r = in_netns(pod.netns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", target)
        assert r.returncode == 0, f"ping {target} from {pod.netns}:\n{r.stdout}{r.stderr}"


class UnixHttp(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("node-loader", timeout=30)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def call(sock: Path, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    conn = UnixHttp(sock)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def kv_snapshot(url: str, bucket: catalog.Bucket[Any]) -> dict[str, tuple[int, Any]]:
    async def read() -> dict[str, tuple[int, Any]]:
        nc = await nats.connect(url)
        try:
            kv = TypedKv(
                KvBucket(nc.jetstream(), bucket.name), bucket, BusMetrics(CollectorRegistry())
            )
            entries = await kv.raw.snapshot()
            return {k: (e.revision, kv.decode(k, e.value)) for k, e in entries.items() if e.value}
        finally:
            await nc.close()

    return asyncio.run(read())


def kv_put(url: str, bucket: catalog.Bucket[Any], items: dict[str, Any]) -> None:
    """Write (value) or delete (None) keys of a catalogue bucket, as its owner would."""

    async def write() -> None:
        nc = await nats.connect(url)
        try:
            kv = TypedKv(
                await KvBucket.ensure(nc.jetstream(), bucket.name), bucket,
                BusMetrics(CollectorRegistry()),
            )  # fmt: skip
            for key, value in items.items():
                if value is None:
                    await kv.delete(key)
                else:
                    await kv.put(key, value)
        finally:
            await nc.close()

    asyncio.run(write())


def open_policy(pod: Pod, identity: int = 1000) -> EndpointPolicy:
    """A policy that isolates the pod in neither direction (no NetworkPolicy selects it)."""
    return EndpointPolicy(
        node=NODE,
        pod_namespace="default",
        pod_name=pod.name,
        pod_uid=pod.uid,
        identity=identity,
        ingress=DirectionPolicy(),
        egress=DirectionPolicy(),
    )


def kv_put_nodes(url: str, nodes: list[Node]) -> None:
    async def write() -> None:
        nc = await nats.connect(url)
        try:
            kv = TypedKv(
                await KvBucket.ensure(nc.jetstream(), catalog.K8S.name),
                catalog.K8S,
                BusMetrics(CollectorRegistry()),
            )
            for n in nodes:
                await kv.put(catalog.k8s_key_of(n), n)
        finally:
            await nc.close()

    asyncio.run(write())


def node_model(name: str, internal_ip: str, pod_cidr: str) -> Node:
    return Node(
        meta=Meta(name=name, uid=name, resource_version="1"),
        internal_ips=(internal_ip,),
        external_ips=(),
        pod_cidrs=(pod_cidr,),
        taints=(Taint(key=TAINT_KEY, value="", effect="NoSchedule"),),
        ready=True,
        unschedulable=False,
    )


def api_request(api: ApiServer, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        api.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Loader:
    """A node-loader process for the topology, restartable."""

    def __init__(self, workdir: Path, nats_server: NatsServer, api: ApiServer, topo: Topology,
                 bpf_root: Path, env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.socket = workdir / "run" / "node-loader.sock"
        self.conf_dir = workdir / "net.d"
        self.bpf_root = bpf_root
        self.pin_dir = bpf_root / NODE
        self.nats = nats_server
        self.service = Service(
            "node-loader",
            workdir,
            nats_server,
            env={
                "WEIR_NODE_NAME": NODE,
                "WEIR_NETNS": topo.node,
                "WEIR_BPF_ROOT": str(bpf_root),
                "WEIR_SOCKET_PATH": str(self.socket),
                "WEIR_CNI_CONF_DIR": str(self.conf_dir),
                "WEIR_IPAM_DIR": str(workdir / "ipam"),
                "WEIR_KUBECONFIG": str(api.kubeconfig),
                "WEIR_RESYNC_SECONDS": "600",
                **(env or {}),
            },
        )

    def start(self) -> None:
        self.service.start_ready(timeout=60)

    def readyz(self) -> dict[str, Any]:
        req = urllib.request.Request(self.service.readyz, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                doc: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as e:
            doc = json.loads(e.read())
        return doc

    def put(self, pod: Pod, *, policy: EndpointPolicy | None = None) -> tuple[int, Any]:
        """Register `pod`, after writing its policy to KV (default: one isolating nothing)."""
        self.put_policy(policy or open_policy(pod))
        return self.register(pod)

    def register(self, pod: Pod) -> tuple[int, Any]:
        """The bare PUT, as the CNI plugin sends it."""
        req = pod.request()
        return call(self.socket, "PUT", f"/v1/endpoints/{req.container_id}", req.to_json())

    def put_policy(self, *policies: EndpointPolicy) -> None:
        kv_put(
            self.nats.url,
            catalog.POLICY,
            {catalog.policy_key(p.node, p.pod_namespace, p.pod_name): p for p in policies},
        )

    def endpoint(self, pod: Pod) -> tuple[int, Any]:
        return call(self.socket, "GET", f"/v1/endpoints/{pod.container_id}")

    def cli(self, *args: str) -> Any:
        r = subprocess.run(
            [str(VENV_BIN / "weir"), "bpf", "endpoint", "list", "--bpf-root", str(self.bpf_root),
             "--node", NODE, *args],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout) if "json" in args else r.stdout

    def endpoint_keys(self) -> dict[str, tuple[int, Any]]:
        return kv_snapshot(self.nats.url, catalog.ENDPOINTS)


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    require(os.geteuid() == 0, "needs root (network namespaces, BPF)")
    require(shutil.which("ip") is not None, "iproute2 missing")
    require(os.path.ismount("/sys/fs/bpf"), "bpffs is not mounted (run `make setup`)")
    require(importlib.util.find_spec("bcc") is not None, "BCC is not importable (run `make setup`)")
    t = Topology()
    try:
        t.create()
        yield t
    finally:
        t.destroy()


@contextlib.contextmanager
def pins_root() -> Iterator[Path]:
    root = Path(f"/sys/fs/bpf/weir-test-{uuid.uuid4().hex[:12]}")
    root.mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def node_loader(
    tmp_path: Path,
    nats_server: NatsServer,
    api: ApiServer,
    topo: Topology,
    bpf_root: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Loader]:
    """A node-loader for `topo` (not started), with its Node in the API and KV."""
    api_request(
        api,
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE},
            "spec": {
                "podCIDR": POD_CIDR,
                "taints": [
                    {"key": "example.com/keep", "effect": "NoSchedule"},
                    {"key": TAINT_KEY, "effect": "NoSchedule"},
                ],
            },
        },
    )
    kv_put_nodes(
        nats_server.url,
        [
            node_model(NODE, "172.18.0.2", POD_CIDR),
            node_model("node-2", "172.18.0.3", "10.244.2.0/24"),
        ],
    )
    nl = Loader(tmp_path, nats_server, api, topo, bpf_root, env)
    try:
        yield nl
    finally:
        nl.service.stop()


@pytest.fixture
def topo() -> Iterator[Topology]:
    with topology() as t:
        yield t


@pytest.fixture
def bpf_root() -> Iterator[Path]:
    with pins_root() as root:
        yield root


@pytest.fixture
def loader(
    tmp_path: Path, nats_server: NatsServer, api: ApiServer, topo: Topology, bpf_root: Path
) -> Iterator[Loader]:
    with node_loader(tmp_path, nats_server, api, topo, bpf_root) as nl:
        yield nl


# --- start ------------------------------------------------------------------------------------


def test_start_writes_the_conflist_routes_other_nodes_and_removes_only_our_taint(
    loader: Loader, api: ApiServer, topo: Topology
) -> None:
    loader.start()
    checks = loader.readyz()["checks"]
    for name in ("nats", "socket", "pins", "program", "netns", "endpoints", "cni-config",
                 "routes", "taint"):  # fmt: skip
        assert checks[name]["ok"], (name, checks[name])
    conflist = json.loads((loader.conf_dir / "05-weir.conflist").read_text())
    plugin = conflist["plugins"][0]
    assert plugin["ipam"]["subnet"] == POD_CIDR
    assert plugin["nodeLoaderSocket"] == str(loader.socket)
    routes = json.loads(ip("-j", "-n", topo.node, "route", "show", "proto", "87").stdout)
    assert [(r["dst"], r["gateway"]) for r in routes] == [("10.244.2.0/24", "172.18.0.3")]
    taints = api_request(api, "GET", f"/api/v1/nodes/{NODE}")["spec"]["taints"]
    assert taints == [{"key": "example.com/keep", "effect": "NoSchedule"}]
    assert sorted(p.name for p in loader.pin_dir.iterdir()) == sorted(s.name for s in maps.SPECS)
    status, doc = call(loader.socket, "GET", "/v1/healthz")
    assert status == 200 and doc["ready"]


def test_a_node_leaving_takes_its_route_and_a_new_one_brings_one(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    kv_put_nodes(loader.nats.url, [node_model("node-3", "172.18.0.4", "10.244.3.0/24")])

    def routes() -> list[tuple[str, str]]:
        found = json.loads(ip("-j", "-n", topo.node, "route", "show", "proto", "87").stdout)
        return sorted((r["dst"], r["gateway"]) for r in found)

    wait_until(lambda: len(routes()) == 2, 10, "route to node-3")
    assert routes() == [("10.244.2.0/24", "172.18.0.3"), ("10.244.3.0/24", "172.18.0.4")]
    # A route that is not Weir's is never touched.
    ip("-n", topo.node, "route", "add", "10.99.0.0/16", "via", "172.18.0.9")
    kv_put_nodes(loader.nats.url, [node_model("node-3", "172.18.0.5", "10.244.3.0/24")])
    wait_until(lambda: ("10.244.3.0/24", "172.18.0.5") in routes(), 10, "route replaced")
    assert "10.99.0.0/16" in ip("-n", topo.node, "route", "show").stdout


# --- registration, counting, restart ------------------------------------------------------------


def test_put_programs_the_veth_and_pings_are_counted_both_ways(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    pod = topo.add_pod(1)
    status, doc = loader.put(pod)
    assert status == 200, doc
    assert doc["host_ifindex"] == pod.ifindex and doc["ip"] == pod.ip
    # The answer came only once everything was in place.
    filters = topo.filters(pod.veth)
    assert [f["options"]["bpf_name"] for f in filters["ingress"]] == ["weir_from_pod"]
    assert [f["options"]["bpf_name"] for f in filters["egress"]] == ["weir_to_pod"]
    assert all(
        f["pref"] == 1 and f["options"]["direct-action"] for fs in filters.values() for f in fs
    )
    keys = loader.endpoint_keys()
    revision, record = keys[catalog.endpoint_key(NODE, pod.container_id)]
    assert isinstance(record, EndpointRecord) and record.host_ifname == pod.veth
    # Idempotent: the same PUT changes nothing (no new KV revision, same programs).
    ids = topo.prog_ids(pod.veth)
    assert loader.put(pod)[0] == 200
    assert loader.endpoint_keys()[catalog.endpoint_key(NODE, pod.container_id)][0] == revision
    assert topo.prog_ids(pod.veth) == ids

    topo.ping(pod, count=3)
    status, doc = loader.endpoint(pod)
    assert status == 200
    assert doc["counters"]["from_pod"]["packets"] >= 3  # echo requests (plus ARP)
    assert doc["counters"]["to_pod"]["packets"] >= 3  # echo replies
    assert doc["counters"]["from_pod"]["bytes"] >= 3 * 98

    [row] = loader.cli("-o", "json")
    assert (
        row["endpoint"] == pod.container_id and row["pod"] == f"default/pod-{pod.container_id[:6]}"
    )
    assert row["ip"] == pod.ip and row["host_ifindex"] == pod.ifindex
    # Read later than the API's answer: never less (a neighbour probe may have passed since).
    assert row["packets_out"] >= doc["counters"]["from_pod"]["packets"]
    assert row["packets_in"] >= doc["counters"]["to_pod"]["packets"]
    table = loader.cli()
    assert pod.container_id[:12] in table and pod.ip in table and "PKTS IN" in table

    metrics = loader.service.metrics()
    assert "weir_node_loader_endpoints 1.0" in metrics
    assert 'weir_node_loader_endpoint_registrations_total{outcome="created"} 1.0' in metrics


def test_pod_to_pod_through_the_node_is_counted_on_both_endpoints(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    a, b = topo.add_pod(1), topo.add_pod(2)
    assert loader.put(a)[0] == 200 and loader.put(b)[0] == 200
    topo.ping(a, b.ip, count=4)
    ca = loader.endpoint(a)[1]["counters"]
    cb = loader.endpoint(b)[1]["counters"]
    assert ca["from_pod"]["packets"] >= 4 and cb["to_pod"]["packets"] >= 4
    assert cb["from_pod"]["packets"] >= 4 and ca["to_pod"]["packets"] >= 4  # the replies


def test_kill_9_and_restart_keeps_programs_counters_and_kv(loader: Loader, topo: Topology) -> None:
    loader.start()
    pod = topo.add_pod(1)
    assert loader.put(pod)[0] == 200
    topo.ping(pod, count=3)
    ids = topo.prog_ids(pod.veth)
    before = loader.endpoint(pod)[1]["counters"]
    key = catalog.endpoint_key(NODE, pod.container_id)
    kv_before = loader.endpoint_keys()[key]

    loader.service.kill()
    topo.ping(pod, count=2)  # the programs keep counting with node-loader dead
    down = loader.cli("-o", "json")[0]
    assert down["packets_out"] >= before["from_pod"]["packets"] + 2

    loader.start()
    assert topo.prog_ids(pod.veth) == ids  # the very same programs: adopted, never detached
    after = loader.endpoint(pod)[1]["counters"]
    assert after["from_pod"]["packets"] >= down["packets_out"]
    assert loader.endpoint_keys()[key] == kv_before  # intact: not even rewritten
    topo.ping(pod, count=2)
    later = loader.endpoint(pod)[1]["counters"]
    assert later["from_pod"]["packets"] >= after["from_pod"]["packets"] + 2
    checks = loader.readyz()["checks"]
    assert checks["endpoints"]["detail"] == "reconciled at start: 1 adopted, 0 repaired, 0 removed"
    every = sorted(spec.name for spec in maps.SPECS)
    assert f"re-opened {every}, created none" in checks["pins"]["detail"]
    print(f"prog ids {ids}; from_pod packets {before['from_pod']['packets']} before the kill, "
          f"{down['packets_out']} while down, {later['from_pod']['packets']} after")  # fmt: skip


def test_a_program_of_another_build_is_swapped_in_place_at_restart(
    loader: Loader, topo: Topology
) -> None:
    from bcc import BPF
    from weir_node_loader import tc
    from weir_node_loader.linux import open_netlink

    loader.start()
    pod = topo.add_pod(1)
    assert loader.put(pod)[0] == 200
    ids = topo.prog_ids(pod.veth)
    loader.service.kill()
    # What an older node-loader might have left on the ingress hook: same name, other code.
    old = BPF(text=b"int weir_from_pod(struct __sk_buff *skb) { return 0; }")
    fn = old.load_func(b"weir_from_pod", BPF.SCHED_CLS)
    ipr = open_netlink(topo.node)
    try:
        tc.set_filter(ipr, pod.ifindex, tc.CLSACT_INGRESS, fd=fn.fd, name="weir_from_pod",
                      replace=True)  # fmt: skip
    finally:
        ipr.close()
    old_id = topo.prog_ids(pod.veth)["ingress"]
    assert old_id != ids["ingress"]

    loader.start()
    now = topo.prog_ids(pod.veth)
    assert now["egress"] == ids["egress"]  # current: adopted
    assert now["ingress"] not in (old_id, ids["ingress"])  # replaced by this start's build
    topo.ping(pod, count=2)
    assert loader.endpoint(pod)[1]["counters"]["from_pod"]["packets"] >= 2
    assert (
        'weir_node_loader_hook_attachments_total{direction="from_pod",outcome="replaced"} 1.0'
        in loader.service.metrics()
    )
    detail = loader.readyz()["checks"]["endpoints"]["detail"]
    assert detail == "reconciled at start: 0 adopted, 1 repaired, 0 removed"


def test_lost_pins_are_recreated_and_the_endpoint_repaired_from_kv(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    pod = topo.add_pod(1)
    assert loader.put(pod)[0] == 200
    ids = topo.prog_ids(pod.veth)
    loader.service.kill()
    shutil.rmtree(loader.pin_dir)  # the attached programs keep their maps, now unreachable
    loader.start()
    # Same instructions (tag) but other maps: the programs must be swapped to the new pins.
    now = topo.prog_ids(pod.veth)
    assert now["ingress"] != ids["ingress"] and now["egress"] != ids["egress"]
    [row] = loader.cli("-o", "json")
    assert row["endpoint"] == pod.container_id and row["complete"]
    topo.ping(pod, count=2)
    assert loader.endpoint(pod)[1]["counters"]["from_pod"]["packets"] >= 2
    detail = loader.readyz()["checks"]["endpoints"]["detail"]
    assert detail == "reconciled at start: 0 adopted, 1 repaired, 0 removed"


def test_delete_removes_filters_map_entries_and_kv(loader: Loader, topo: Topology) -> None:
    loader.start()
    pod = topo.add_pod(1)
    assert loader.put(pod)[0] == 200
    status, doc = call(loader.socket, "DELETE", f"/v1/endpoints/{pod.container_id}")
    assert (status, doc["deleted"]) == (200, True)
    assert topo.filters(pod.veth) == {"ingress": [], "egress": []}
    assert not topo.has_clsact(pod.veth)
    assert loader.cli("-o", "json") == []
    assert loader.endpoint_keys() == {}
    status, doc = call(loader.socket, "DELETE", f"/v1/endpoints/{pod.container_id}")
    assert (status, doc["deleted"]) == (200, False)
    assert loader.endpoint(pod)[0] == 404


def test_a_veth_removed_while_down_is_cleaned_up_at_the_next_start(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    keep, gone = topo.add_pod(1), topo.add_pod(2)
    assert loader.put(keep)[0] == 200 and loader.put(gone)[0] == 200
    loader.service.kill()
    topo.remove_veth(gone)
    loader.start()
    rows = loader.cli("-o", "json")
    assert [r["endpoint"] for r in rows] == [keep.container_id]
    assert list(loader.endpoint_keys()) == [catalog.endpoint_key(NODE, keep.container_id)]
    assert loader.endpoint(gone)[0] == 404 and loader.endpoint(keep)[0] == 200
    detail = loader.readyz()["checks"]["endpoints"]["detail"]
    assert detail == "reconciled at start: 1 adopted, 0 repaired, 1 removed"


def test_a_registration_for_a_veth_that_does_not_exist_is_a_400(
    loader: Loader, topo: Topology
) -> None:
    loader.start()
    pod = topo.add_pod(1)
    pod.ifindex += 100
    status, doc = loader.put(pod)
    assert status == 400 and "not in the node's network namespace" in doc["error"]
    assert loader.endpoint_keys() == {}


def test_a_pin_with_another_layout_stops_node_loader_loudly(loader: Loader, tmp_path: Path) -> None:
    from bcc import BPF

    loader.pin_dir.mkdir(parents=True)
    path = loader.pin_dir / "weir_ep_stats_v1"
    BPF(text=f'BPF_TABLE_PINNED("hash", u32, u64, old, 8, "{path}");'.encode())
    loader.service.start()
    deadline = time.monotonic() + 60
    while loader.service.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not loader.service.running
    assert loader.service.proc is not None and loader.service.proc.returncode == 1
    log = loader.service.log.read_text()
    assert "refusing the pinned maps" in log and "key size is 4, expected 8" in log
    assert path.exists()  # left for a human to decide
    assert not http_ok(loader.service.readyz)
