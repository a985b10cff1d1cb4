"""Local nodes and pods end to end: `weir dev up`, kubectl, the upstream e2e model, real packets.

A node is a network namespace, a pod is a network namespace wired by weir-cni, executed by the
local kubelet as a runtime would; node-loader puts its counting programs on every pod's veth.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import model
from tests.support.dev import DevCluster
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path_factory.mktemp("one") / "dev", nodes=1)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path_factory.mktemp("two") / "dev", nodes=2)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def apply_model(cluster: DevCluster) -> float:
    cluster.kubectl("apply", "-f", "-", input=model.manifests())
    return cluster.wait_pods_running(list(model.NAMESPACES), 9, timeout=60)


def matrix(cluster: DevCluster, port: int, protocol: str) -> dict[str, dict[str, bool]]:
    out = cluster.weir(
        "dev",
        "probe-matrix",
        "--pods",
        ",".join(model.pod_refs()),
        "--port",
        str(port),
        "--protocol",
        protocol,
        "--timeout",
        "3",
        check=True,
    )
    result: dict[str, dict[str, bool]] = json.loads(out.stdout)["from"]
    return result


def unreachable(m: dict[str, dict[str, bool]]) -> list[str]:
    return [f"{a}->{b}" for a, row in m.items() for b, ok in row.items() if not ok]


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def host_veths(cluster: DevCluster, node: str) -> list[str]:
    return sorted(
        link["ifname"]
        for link in ip_json("-n", cluster.node_netns(node), "link")
        if link["ifname"].startswith("wr")
    )


def pod_namespaces(cluster: DevCluster) -> list[str]:
    cid = cluster.cluster_id
    infra = {f"{cid}-fabric", *(f"{cid}-{n}" for n in cluster.info["nodes"])}
    names = [ns["name"] for ns in ip_json("netns", "list")]
    return sorted(n for n in names if n.startswith(f"{cid}-") and n not in infra)


def endpoints(cluster: DevCluster, node: str) -> list[dict[str, Any]]:
    out = cluster.weir("bpf", "endpoint", "list", "--node", node, "-o", "json", check=True)
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def ipam_allocations(cluster: DevCluster, node: str) -> list[str]:
    """Files under the node's IPAM dir whose names are IP addresses (one per allocation)."""
    import ipaddress

    root = cluster.state_dir / "nodes" / node / "ipam"
    found = []
    for path in root.rglob("*") if root.exists() else []:
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        found.append(path.name)
    return found


def test_the_model_runs_within_a_minute_and_every_pair_answers(one_node: DevCluster) -> None:
    seconds = apply_model(one_node)
    assert seconds < 60
    pods = one_node.kubectl_json("get", "pods", "-A")["items"]
    ips = {p["status"]["podIP"] for p in pods if p["metadata"]["namespace"] in model.NAMESPACES}
    assert len(ips) == 9 and all(ip.startswith("10.244.1.") for ip in ips)
    tcp = matrix(one_node, 80, "tcp")
    assert sum(len(row) for row in tcp.values()) == 72 and unreachable(tcp) == []
    udp = matrix(one_node, 81, "udp")
    assert unreachable(udp) == []
    probe = one_node.weir("dev", "probe", "x/a", "y/b", "81", "--json", check=True)
    assert json.loads(probe.stdout)["answer"] == "b"
    # A port the pod does not declare answers nothing.
    closed = one_node.weir("dev", "probe", "x/a", "y/b", "82", "--timeout", "1")
    assert closed.returncode == 1
    exec_ = one_node.weir("dev", "exec", "x/a", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert exec_.returncode == 0 and "10.244.1." in exec_.stdout


def test_endpoints_carry_counting_programs_that_survive_a_node_loader_restart(
    one_node: DevCluster,
) -> None:
    apply_model(one_node)
    node = "node-1"
    before = {e["pod"]: e for e in endpoints(one_node, node)}
    assert set(before) >= {"x/a", "y/b"}
    veth = before["x/a"]["host_ifname"]
    netns = one_node.node_netns(node)

    def prog_ids() -> set[int]:
        ids = set()
        for direction in ("ingress", "egress"):
            out = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    netns,
                    "tc",
                    "-j",
                    "filter",
                    "show",
                    "dev",
                    veth,
                    direction,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            for f in json.loads(out.stdout or "[]"):
                prog = (f.get("options") or {}).get("prog") or {}
                if "id" in prog:
                    ids.add(int(prog["id"]))
        return ids

    attached = prog_ids()
    assert len(attached) == 2  # one program each way
    assert one_node.weir("dev", "probe", "x/a", "y/b", "80").returncode == 0
    counted = {e["pod"]: e for e in endpoints(one_node, node)}["x/a"]
    assert counted["packets_out"] > 0 and counted["packets_in"] > 0

    old_pid = one_node.info["components"][f"node-loader/{node}"]["pid"]
    os.kill(old_pid, 9)
    wait_until(
        lambda: one_node.info["components"][f"node-loader/{node}"]["pid"] != old_pid,
        30,
        "node-loader was not restarted",
    )
    wait_until(
        lambda: one_node.weir("dev", "status").returncode == 0,
        60,
        "the cluster did not become ready again",
    )
    assert prog_ids() == attached  # the very same programs: never detached
    for _ in range(5):
        assert one_node.weir("dev", "probe", "x/a", "y/b", "80").returncode == 0
    after = {e["pod"]: e for e in endpoints(one_node, node)}["x/a"]
    assert after["packets_out"] > counted["packets_out"]  # kept counting from where it was
    assert after["host_ifname"] == veth


def test_deleting_every_pod_leaves_nothing_behind(one_node: DevCluster) -> None:
    apply_model(one_node)
    assert pod_namespaces(one_node) and host_veths(one_node, "node-1")
    one_node.kubectl("delete", "namespace", *model.NAMESPACES, "--wait=true", timeout=120)
    wait_until(lambda: not pod_namespaces(one_node), 60, "pod namespaces left")
    assert host_veths(one_node, "node-1") == []
    assert ipam_allocations(one_node, "node-1") == []
    assert endpoints(one_node, "node-1") == []
    kv = one_node.weir("kv", "ls", "weir-endpoints")
    assert kv.stdout.strip() == ""


def test_two_nodes_spread_the_model_and_reach_across(two_nodes: DevCluster) -> None:
    apply_model(two_nodes)
    pods = [
        p
        for p in two_nodes.kubectl_json("get", "pods", "-A")["items"]
        if p["metadata"]["namespace"] in model.NAMESPACES
    ]
    by_node: dict[str, int] = {}
    for p in pods:
        by_node[p["spec"]["nodeName"]] = by_node.get(p["spec"]["nodeName"], 0) + 1
    assert set(by_node) == {"node-1", "node-2"}, by_node
    assert unreachable(matrix(two_nodes, 80, "tcp")) == []
    assert unreachable(matrix(two_nodes, 81, "udp")) == []


def test_250_pods_on_one_node(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", nodes=1)
    cluster.up()
    try:
        cluster.kubectl("create", "namespace", "load")
        pods = [model.pod("load", f"p{i}") for i in range(250)]
        cluster.kubectl(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in pods), timeout=300
        )
        started = time.monotonic()
        cluster.wait_pods_running(["load"], 250, timeout=300)
        print(f"250 pods running in {time.monotonic() - started:.1f}s")
        assert cluster.weir("dev", "probe", "load/p0", "load/p249", "80").returncode == 0
    finally:
        cluster.down()
