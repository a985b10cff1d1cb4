"""weir-cni, the real executable, driven as a container runtime drives it.

Every test makes its own node network namespace and pod namespaces (`wtest-cni-…`), runs
`.venv/bin/weir-cni` inside the node namespace with the CNI environment and the network config
on stdin, against a test double of node-loader's endpoint API on a unix socket, and deletes
every namespace it made, pass or fail. Nothing here touches the machine's own namespace.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from weir.cni_config import PluginConfig
from weir_cni.names import host_ifname, host_mac, pod_mac

from tests.support.cni_harness import (
    WEIR_CNI,
    Netns,
    NodeLoaderDouble,
    Outcome,
    Runtime,
    unique,
)
from tests.support.processes import require

pytestmark = [pytest.mark.integration, pytest.mark.root]


class Net:
    """One node namespace with node-loader's double, and the pods made in it."""

    def __init__(self, tmp: Path, subnet: str = "10.251.1.0/24") -> None:
        self.tmp = tmp
        self.node = Netns(unique("wtest-cni-node"))
        self.double = NodeLoaderDouble(tmp / "node-loader.sock")
        self.ipam_dir = tmp / "ipam"
        self.config = PluginConfig(
            node_loader_socket=str(self.double.socket_path),
            subnet=subnet,
            ipam_data_dir=str(self.ipam_dir),
            mtu=1400,
        )
        self.runtime = Runtime(self.node, self.config)
        self.pods: list[Netns] = []

    def pod(self) -> Netns:
        pod = Netns(unique("wtest-cni-pod"))
        self.pods.append(pod)  # registered first: deleted even if create fails half-way
        return pod.create()

    def host_veths(self) -> list[str]:
        return sorted(
            link["ifname"]
            for link in self.node.ip_json("link", "show", "type", "veth")
            if link["ifname"].startswith("wr")
        )

    def node_routes(self) -> list[dict[str, Any]]:
        return list(self.node.ip_json("route", "show"))

    def ipam_files(self) -> dict[str, str]:
        if not self.ipam_dir.exists():
            return {}
        return {
            p.name: p.read_text().split("\n")[0]
            for p in self.ipam_dir.iterdir()
            if p.name[0].isdigit()
        }

    def assert_nothing_left(self) -> None:
        assert self.host_veths() == []
        assert self.node_routes() == []
        assert self.ipam_files() == {}

    def close(self) -> None:
        try:
            self.double.stop()
        finally:
            for pod in self.pods:
                pod.delete()
            self.node.delete()


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    require(os.geteuid() == 0, "weir-cni tests need root (network namespaces)")
    for tool in ("ip", "nsenter", "ping"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(WEIR_CNI.exists(), f"{WEIR_CNI} missing (run `make setup`)")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path)
    try:
        n.node.create()
        n.double.start()
        yield n
    finally:
        n.close()


def ok(outcome: Outcome) -> Any:
    assert outcome.returncode == 0, f"weir-cni failed: {outcome.stdout} {outcome.stderr}"
    return outcome.json


def failed(outcome: Outcome, code: int) -> dict[str, Any]:
    assert outcome.returncode != 0, f"expected CNI error {code}, got success: {outcome.stdout}"
    doc = outcome.json
    assert isinstance(doc, dict), outcome.stdout
    assert set(doc) == {"cniVersion", "code", "msg", "details"}
    assert doc["code"] == code, doc
    return doc


def pod_ip(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def ping(pod: Netns, target: str) -> bool:
    return pod.run("ping", "-c", "1", "-W", "2", target).returncode == 0


# ---- ADD ---------------------------------------------------------------------------------------


def test_add_wires_the_pod_and_registers_it(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-add", pod))
    host = host_ifname("c-add")
    ip = pod_ip(result)
    assert result["cniVersion"] == "1.0.0"
    assert ip == "10.251.1.2"
    assert result["interfaces"] == [
        {"name": host, "mac": host_mac("c-add")},
        {"name": "eth0", "mac": pod_mac("c-add"), "sandbox": pod.path},
    ]
    assert result["ips"] == [{"address": f"{ip}/32", "gateway": "169.254.1.1", "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]

    # The pod: eth0 up with its /32, the gateway's link route and the default route.
    (eth0,) = pod.ip_json("addr", "show", "dev", "eth0")
    assert "UP" in eth0["flags"]
    assert eth0["mtu"] == 1400
    assert eth0["address"] == pod_mac("c-add")
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [
        (ip, 32)
    ]
    routes = {(r["dst"], r.get("gateway"), r.get("scope")) for r in pod.ip_json("route")}
    assert routes == {("default", "169.254.1.1", None), ("169.254.1.1", None, "link")}

    # The node: the host veth up with the gateway address, and the pod's /32 route on it.
    (link,) = net.node.ip_json("addr", "show", "dev", host)
    assert "UP" in link["flags"]
    assert link["mtu"] == 1400
    assert ("169.254.1.1", 32) in [(a["local"], a["prefixlen"]) for a in link["addr_info"]]
    assert [(r["dst"], r["dev"]) for r in net.node_routes()] == [(ip, host)]

    # node-loader was told, with the real ifindex and MACs, before ADD returned.
    record = net.double.endpoints["c-add"]
    assert record["ip"] == ip
    assert record["pod_namespace"] == "default"
    assert record["pod_name"] == "pod-c-add"
    assert record["host_ifname"] == host
    assert record["host_ifindex"] == link["ifindex"]
    assert record["host_mac"] == host_mac("c-add")
    assert record["mac"] == pod_mac("c-add")
    assert (record["netns"], record["ifname"]) == (pod.path, "eth0")
    assert record["pod_uid"] == "uid-c-add"  # K8S_POD_UID: node-loader waits for its policy
    assert net.ipam_files() == {ip: "c-add"}


def test_pods_reach_the_gateway_and_each_other(net: Net) -> None:
    net.node.sysctl("net.ipv4.ip_forward", "1")  # stands in for the BPF datapath here
    a, b = net.pod(), net.pod()
    ip_a = pod_ip(ok(net.runtime.add("c-a", a)))
    ip_b = pod_ip(ok(net.runtime.add("c-b", b)))
    assert ip_a != ip_b
    assert ping(a, "169.254.1.1")
    assert ping(b, "169.254.1.1")
    assert ping(a, ip_b)
    assert ping(b, ip_a)


def test_add_twice_is_the_same_attachment(net: Net) -> None:
    pod = net.pod()
    first = ok(net.runtime.add("c-twice", pod))
    (before,) = net.node.ip_json("link", "show", "dev", host_ifname("c-twice"))
    second = ok(net.runtime.add("c-twice", pod))
    (after,) = net.node.ip_json("link", "show", "dev", host_ifname("c-twice"))
    assert second == first
    assert after["ifindex"] == before["ifindex"]  # the same veth, not a new one
    assert len(net.ipam_files()) == 1
    assert net.host_veths() == [host_ifname("c-twice")]
    assert net.double.calls("PUT") == ["c-twice", "c-twice"]


def test_add_replaces_a_half_made_leftover_veth(net: Net) -> None:
    # What an ADD killed between `link add` and its rollback would leave: our name, no pod.
    host = host_ifname("c-stale")
    assert net.node.run("ip", "link", "add", host, "type", "veth", "peer", "stray0").returncode == 0
    pod = net.pod()
    result = ok(net.runtime.add("c-stale", pod))
    assert net.host_veths() == [host]
    stray = net.node.run("ip", "link", "show", "dev", "stray0")
    assert stray.returncode != 0, "the leftover pair was deleted, not reused"
    assert pod.ip_json("link", "show", "dev", "eth0")[0]["address"] == pod_mac("c-stale")
    assert ok(net.runtime.check("c-stale", pod, result)) is None


def test_add_in_older_cni_versions(net: Net) -> None:
    net.runtime.cni_version = "0.4.0"
    result = ok(net.runtime.add("c-old", net.pod()))
    assert result["cniVersion"] == "0.4.0"
    assert result["ips"][0]["version"] == "4"


def test_mtu_and_dns_from_the_config(net: Net) -> None:
    pod = net.pod()
    dns = {"nameservers": ["10.96.0.10"]}
    result = ok(net.runtime.add("c-mtu", pod, mtu=9000, dns=dns))
    assert result["dns"] == dns
    assert pod.ip_json("link", "show", "dev", "eth0")[0]["mtu"] == 9000
    assert net.node.ip_json("link", "show", "dev", host_ifname("c-mtu"))[0]["mtu"] == 9000


# ---- CHECK -------------------------------------------------------------------------------------


def test_check_passes_then_names_what_is_missing(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-check", pod))
    assert ok(net.runtime.check("c-check", pod, result)) is None

    assert pod.run("ip", "route", "del", "default").returncode == 0
    doc = failed(net.runtime.check("c-check", pod, result), 103)
    assert "pod route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing" in doc["msg"]

    ok(net.runtime.add("c-check", pod))  # ADD again repairs it
    assert ok(net.runtime.check("c-check", pod, result)) is None

    ip = pod_ip(result)
    assert net.node.run("ip", "route", "del", f"{ip}/32").returncode == 0
    doc = failed(net.runtime.check("c-check", pod, result), 103)
    assert f"node route {ip}/32 dev {host_ifname('c-check')} is missing" in doc["msg"]


def test_check_fails_without_the_address_or_the_registration(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-chk2", pod))
    ip = pod_ip(result)
    assert pod.run("ip", "addr", "del", f"{ip}/32", "dev", "eth0").returncode == 0
    assert (
        f"eth0 lacks address {ip}/32"
        in failed(net.runtime.check("c-chk2", pod, result), 103)["details"]
    )
    ok(net.runtime.add("c-chk2", pod))
    net.double.endpoints.clear()
    doc = failed(net.runtime.check("c-chk2", pod, result), 103)
    assert "node-loader has no endpoint c-chk2" in doc["msg"]


def test_check_after_the_veth_is_gone(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-chk3", pod))
    assert net.node.run("ip", "link", "del", host_ifname("c-chk3")).returncode == 0
    doc = failed(net.runtime.check("c-chk3", pod, result), 103)
    assert f"host veth {host_ifname('c-chk3')} is missing" in doc["details"]
    assert "eth0 is missing" in doc["details"]


def test_check_with_node_loader_down_is_try_again(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-chk5", pod))
    net.double.stop()
    failed(net.runtime.check("c-chk5", pod, result), 11)


def test_check_needs_prev_result_and_a_recent_version(net: Net) -> None:
    pod = net.pod()
    ok(net.runtime.add("c-chk4", pod))
    env = net.runtime.env("CHECK", "c-chk4", pod.path)
    failed(net.runtime.invoke(env, net.runtime.netconf()), 7)
    failed(net.runtime.invoke(env, net.runtime.netconf(cniVersion="0.3.1", prevResult={})), 1)


# ---- DEL ---------------------------------------------------------------------------------------


def test_del_undoes_everything_and_twice_is_fine(net: Net) -> None:
    pod = net.pod()
    ok(net.runtime.add("c-del", pod))
    assert ok(net.runtime.delete("c-del", pod)) is None
    net.assert_nothing_left()
    assert pod.ip_json("link", "show", "type", "veth") == []
    assert "c-del" not in net.double.endpoints
    assert ok(net.runtime.delete("c-del", pod)) is None
    assert net.double.calls("DELETE") == ["c-del", "c-del"]


def test_del_of_an_unknown_container_and_without_netns(net: Net) -> None:
    assert ok(net.runtime.delete("never-added")) is None
    pod = net.pod()
    ok(net.runtime.add("c-gone", pod))
    pod.delete()  # the runtime already removed the sandbox; its veth went with it
    assert ok(net.runtime.delete("c-gone", pod)) is None
    net.assert_nothing_left()


def test_del_when_the_veth_is_already_gone(net: Net) -> None:
    pod = net.pod()
    ok(net.runtime.add("c-noveth", pod))
    assert net.node.run("ip", "link", "del", host_ifname("c-noveth")).returncode == 0
    assert ok(net.runtime.delete("c-noveth", pod)) is None
    net.assert_nothing_left()


def test_del_with_node_loader_down_still_cleans_up(net: Net) -> None:
    pod = net.pod()
    ok(net.runtime.add("c-deldown", pod))
    net.double.stop()
    outcome = net.runtime.delete("c-deldown", pod)
    assert ok(outcome) is None
    assert "node-loader unreachable" in outcome.stderr
    net.assert_nothing_left()


def test_del_refused_by_node_loader_keeps_everything_for_the_retry(net: Net) -> None:
    pod = net.pod()
    result = ok(net.runtime.add("c-delerr", pod))
    net.double.delete_status = 500
    doc = failed(net.runtime.delete("c-delerr", pod), 101)
    assert doc["details"] == "injected failure"
    assert net.host_veths() == [host_ifname("c-delerr")]
    assert net.ipam_files() == {pod_ip(result): "c-delerr"}
    net.double.delete_status = None
    ok(net.runtime.delete("c-delerr", pod))
    net.assert_nothing_left()


# ---- errors: the right code, and nothing made --------------------------------------------------


def test_invocation_errors_have_their_codes_and_make_nothing(net: Net) -> None:
    pod = net.pod()
    rt = net.runtime
    env = rt.env("ADD", "c-err", pod.path)
    failed(rt.invoke(env, "{this is not json"), 6)
    failed(rt.invoke(env, rt.netconf(ipam={"subnet": "10.251.1.0/24"})), 7)
    failed(rt.invoke(env, rt.netconf(cniVersion="9.9.9")), 1)
    bad_type = rt.netconf(ipam={"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": "/x"})
    assert "ipam.type" in failed(rt.invoke(env, bad_type), 2)["msg"]
    for var in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"):
        failed(rt.invoke({k: v for k, v in env.items() if k != var}, rt.netconf()), 4)
    failed(rt.invoke({**env, "CNI_ARGS": "K8S_POD_NAMESPACE=default"}, rt.netconf()), 4)
    failed(rt.invoke({**env, "CNI_NETNS": "/run/netns/wtest-cni-does-not-exist"}, rt.netconf()), 3)
    # The node's own namespace is never wired as if it were a pod.
    failed(rt.invoke({**env, "CNI_NETNS": net.node.path}, rt.netconf()), 4)
    net.assert_nothing_left()
    assert pod.ip_json("link", "show", "type", "veth") == []
    assert net.double.calls("PUT") == []


def test_version_and_unknown_command(net: Net) -> None:
    doc = ok(net.runtime.invoke(net.runtime.env("VERSION"), '{"cniVersion": "1.0.0"}'))
    assert "1.0.0" in doc["supportedVersions"]
    failed(net.runtime.invoke(net.runtime.env("FROB"), net.runtime.netconf()), 4)


def test_ifname_taken_in_the_pod(net: Net) -> None:
    pod = net.pod()
    assert pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "x0").returncode == 0
    doc = failed(net.runtime.add("c-taken", pod), 104)
    assert "eth0 already exists" in doc["msg"]
    net.assert_nothing_left()


def test_ipam_exhaustion_on_a_slash_30(tmp_path: Path) -> None:
    n = Net(tmp_path, subnet="10.251.9.0/30")
    try:
        n.node.create()
        n.double.start()
        first = ok(n.runtime.add("c-x1", n.pod()))
        assert pod_ip(first) == "10.251.9.2"
        doc = failed(n.runtime.add("c-x2", n.pod()), 100)
        assert "10.251.9.0/30" in doc["msg"]
        assert n.host_veths() == [host_ifname("c-x1")]
        assert n.ipam_files() == {"10.251.9.2": "c-x1"}
        ok(n.runtime.delete("c-x1"))
        assert pod_ip(ok(n.runtime.add("c-x2", n.pods[1]))) == "10.251.9.2"
    finally:
        n.close()


# ---- node-loader failures roll ADD back --------------------------------------------------------


def test_node_loader_unreachable_is_try_again_and_rolls_back(net: Net) -> None:
    pod = net.pod()
    net.double.stop()
    doc = failed(net.runtime.add("c-down", pod), 11)
    assert "not reachable" in doc["msg"]
    net.assert_nothing_left()
    assert pod.ip_json("link", "show", "type", "veth") == []
    # The retry starts clean and succeeds once node-loader is back.
    net.double = NodeLoaderDouble(net.double.socket_path)
    net.double.start()
    assert pod_ip(ok(net.runtime.add("c-down", pod))) == "10.251.1.3"  # round-robin moved on


def test_node_loader_not_ready_is_try_again(net: Net) -> None:
    pod = net.pod()
    net.double.put_status = 503
    net.double.put_message = "node-loader is starting"
    doc = failed(net.runtime.add("c-503", pod), 11)
    assert doc["details"] == "node-loader is starting"
    net.assert_nothing_left()


def test_node_loader_error_is_in_details_and_rolled_back(net: Net) -> None:
    pod = net.pod()
    net.double.put_status = 500
    net.double.put_message = "the datapath could not be programmed: tc attach: EPERM"
    doc = failed(net.runtime.add("c-500", pod), 101)
    assert "HTTP 500" in doc["msg"]
    assert doc["details"] == "the datapath could not be programmed: tc attach: EPERM"
    net.assert_nothing_left()
    assert pod.ip_json("link", "show", "type", "veth") == []
    # It heard the PUT, so the rollback also asked it to forget the endpoint.
    assert net.double.calls("DELETE") == ["c-500"]


# ---- many at once ------------------------------------------------------------------------------


def test_concurrent_adds_get_distinct_addresses(net: Net) -> None:
    net.node.sysctl("net.ipv4.ip_forward", "1")
    pods = [net.pod() for _ in range(20)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: net.runtime.add(f"c-many-{i}", pods[i]), range(20)))
    ips = [pod_ip(ok(r)) for r in results]
    assert len(set(ips)) == 20
    assert len(net.host_veths()) == 20
    assert sorted(net.double.endpoints) == sorted(f"c-many-{i}" for i in range(20))
    assert ping(pods[0], ips[19])
    with ThreadPoolExecutor(20) as pool:
        deleted = list(pool.map(lambda i: net.runtime.delete(f"c-many-{i}", pods[i]), range(20)))
    for outcome in deleted:
        ok(outcome)
    net.assert_nothing_left()


# ---- GC and STATUS (spec 1.1) ------------------------------------------------------------------


def test_gc_removes_what_the_runtime_no_longer_has(net: Net) -> None:
    pods = [net.pod() for _ in range(3)]
    for i, pod in enumerate(pods):
        ok(net.runtime.add(f"c-gc-{i}", pod))
    old = time.time() - 3600  # past GC's grace for in-flight ADDs
    for path in net.ipam_dir.iterdir():
        os.utime(path, (old, old))
    net.runtime.cni_version = "1.1.0"
    valid = [{"containerID": "c-gc-0", "ifname": "eth0"}]
    env = net.runtime.env("GC")
    conf = net.runtime.netconf(**{"cni.dev/valid-attachments": valid})
    assert ok(net.runtime.invoke(env, conf)) is None
    assert net.host_veths() == [host_ifname("c-gc-0")]
    assert list(net.ipam_files().values()) == ["c-gc-0"]
    assert sorted(net.double.endpoints) == ["c-gc-0"]


def test_gc_keeps_young_allocations(net: Net) -> None:
    ok(net.runtime.add("c-young", net.pod()))
    net.runtime.cni_version = "1.1.0"
    conf = net.runtime.netconf(**{"cni.dev/valid-attachments": []})
    ok(net.runtime.invoke(net.runtime.env("GC"), conf))
    assert net.host_veths() == [host_ifname("c-young")]
    assert list(net.ipam_files().values()) == ["c-young"]


def test_status(net: Net) -> None:
    net.runtime.cni_version = "1.1.0"
    env = {"CNI_COMMAND": "STATUS", "PATH": "/usr/bin:/bin"}
    assert ok(net.runtime.invoke(env, net.runtime.netconf())) is None
    net.double.healthy = False
    assert "not ready" in failed(net.runtime.invoke(env, net.runtime.netconf()), 50)["msg"]
    net.double.healthy = True
    # A /30 has one address; once a pod holds it, the plugin cannot serve another ADD.
    full = net.runtime.netconf(ipam={"subnet": "10.251.7.0/30", "dataDir": str(net.ipam_dir)})
    ok(net.runtime.invoke(net.runtime.env("ADD", "c-status", net.pod().path), full))
    assert "no free address" in failed(net.runtime.invoke(env, full), 50)["msg"]
    net.runtime.cni_version = "1.0.0"
    failed(net.runtime.invoke(env, net.runtime.netconf()), 1)
