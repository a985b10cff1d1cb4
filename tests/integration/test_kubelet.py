"""weir-local-kubelet against a real API server, in network namespaces this test makes.

Each test runs its own `weir-local-apiserver` and one or two kubelets, each with its own node
namespace (`wtest-kl-<tag>-node`, forwarding on) and pod namespaces (`wtest-kl-<tag>-pod-<uid>`),
all deleted on the way out. The CNI side is a test double plugin written into the test's temp
dir (veth pair between the node and the pod, an address from a JSON file, routes via
169.254.1.1, as weir-cni wires pods), so the kubelet is tested on its own; one test uses the
real `weir-cni` with node-loader's endpoint API played by the CNI harness's double. Traffic
only ever flows between these namespaces.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from weir.cni_config import PluginConfig, conflist
from weir_local.kubelet import netns

from tests.support import model
from tests.support.processes import (
    KUBECTL,
    VENV_BIN,
    ApiServer,
    Process,
    free_port,
    http_ok,
    require,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

T = TypeVar("T")
AGENT_TAINT = "node.weir.io/agent-not-ready"

# The CNI test double: what a runtime-facing plugin must do, and nothing of Weir's datapath.
# Fault injection through files in ipam.dataDir: `fail-add` (its text is the error), `hang-add`
# (ADD allocates, then waits while the file exists and gives up without wiring anything).
DOUBLE = r"""#!/usr/bin/python3
import fcntl, hashlib, ipaddress, json, os, subprocess, sys, time

GATEWAY = "169.254.1.1"


def emit(obj, code=0):
    json.dump(obj, sys.stdout)
    sys.exit(code)


def fail(code, msg, details=""):
    emit({"cniVersion": "1.0.0", "code": code, "msg": msg, "details": details}, 1)


def ip(args, ns=None, batch=None, check=True):
    cmd = ["ip"] + (["-n", ns] if ns else []) + (["-batch", "-"] if batch else args)
    r = subprocess.run(cmd, input=batch, capture_output=True, text=True)
    if check and r.returncode:
        fail(999, "ip failed", f"{cmd} {batch or ''}: {r.stderr.strip()}")
    return r


command = os.environ.get("CNI_COMMAND", "")
if command == "VERSION":
    emit({"cniVersion": "1.0.0", "supportedVersions": ["1.0.0"]})
conf = json.load(sys.stdin)
cid = os.environ["CNI_CONTAINERID"]
netns = os.environ.get("CNI_NETNS", "")
ifname = os.environ.get("CNI_IFNAME", "eth0")
ns = os.path.basename(netns)
host = "h" + hashlib.sha1(cid.encode()).hexdigest()[:12]
data = conf["ipam"]["dataDir"]
subnet = ipaddress.ip_network(conf["ipam"]["subnet"])
os.makedirs(data, exist_ok=True)
with open(os.path.join(data, "calls.log"), "a") as log:
    log.write(json.dumps({
        "command": command, "cid": cid, "netns": netns, "ifname": ifname,
        "args": os.environ.get("CNI_ARGS", ""), "path": os.environ.get("CNI_PATH", ""),
        "name": conf.get("name"), "cniVersion": conf.get("cniVersion"),
        "prevResult": conf.get("prevResult"),
        "netns_inode": os.stat("/proc/self/ns/net").st_ino,
    }) + "\n")


def ipam(release=False):
    with open(os.path.join(data, "ipam.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(data, "ipam.json")
        table = json.load(open(path)) if os.path.exists(path) else {}
        if release:
            table.pop(cid, None)
        elif cid not in table:
            used = set(table.values())
            free = (str(a) for a in list(subnet.hosts())[1:] if str(a) not in used)
            table[cid] = next(free, None)
            if table[cid] is None:
                fail(999, "no free address")
        with open(path + ".tmp", "w") as f:
            json.dump(table, f)
        os.replace(path + ".tmp", path)
        return table.get(cid)


if command == "ADD":
    if os.path.exists(os.path.join(data, "fail-add")):
        fail(7, open(os.path.join(data, "fail-add")).read().strip())
    addr = ipam()
    if os.path.exists(os.path.join(data, "hang-add")):
        while os.path.exists(os.path.join(data, "hang-add")):
            time.sleep(0.05)
        fail(11, "interrupted")
    if ip(["link", "show", "dev", host], check=False).returncode:
        ip(["link", "add", host, "type", "veth", "peer", "name", ifname, "netns", netns])
    ip([], batch=f"link set {host} up\naddr replace {GATEWAY}/32 dev {host}\n"
                 f"route replace {addr}/32 dev {host}\n")
    ip([], ns=ns, batch=f"addr replace {addr}/32 dev {ifname}\nlink set {ifname} up\n"
                        f"route replace {GATEWAY}/32 dev {ifname} scope link\n"
                        f"route replace default via {GATEWAY} dev {ifname}\n")
    emit({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": host}, {"name": ifname, "sandbox": netns}],
        "ips": [{"address": f"{addr}/32", "gateway": GATEWAY, "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
        "dns": {},
    })
elif command == "DEL":
    ip(["link", "del", host], check=False)
    ipam(release=True)
elif command == "CHECK":
    want = conf["prevResult"]["ips"][0]["address"]
    r = ip(["-o", "-4", "addr", "show", "dev", ifname], ns=ns, check=False)
    if r.returncode or want not in r.stdout:
        fail(999, f"{ifname} in {ns} does not have {want}")
    if ip(["link", "show", "dev", host], check=False).returncode:
        fail(999, f"host veth {host} is missing")
else:
    fail(4, f"unknown CNI_COMMAND {command!r}")
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


# ---- probes from inside a pod's namespace (a thread that setns(2)es itself) -------------------


def in_netns(name: str, fn: Callable[[], T]) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with netns.entered(netns.path_of(name)):
                box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _recv_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out


def http_get(from_ns: str, ip: str, port: int) -> tuple[int, str]:
    def go() -> bytes:
        with socket.socket() as s:
            s.settimeout(3)
            s.connect((ip, port))  # an IP literal: no name lookup
            s.sendall(f"GET / HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
            return _recv_all(s)

    raw = in_netns(from_ns, go)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def tcp_raw(from_ns: str, ip: str, port: int, payload: bytes) -> str:
    def go() -> bytes:
        with socket.socket() as s:
            s.settimeout(3)
            s.connect((ip, port))
            s.sendall(payload)
            return _recv_all(s)

    return in_netns(from_ns, go).decode()


def udp_ask(from_ns: str, ip: str, port: int) -> str:
    def go() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(b"who are you?", (ip, port))
            return s.recvfrom(4096)[0]

    return in_netns(from_ns, go).decode()


# ---- the cluster -----------------------------------------------------------------------------


class Node:
    """One node: its namespace, CNI dirs, state dir and kubelet process."""

    def __init__(self, env: Env, name: str, index: int, prefix: str = "") -> None:
        tag = secrets.token_hex(3)
        self.env = env
        self.name = name
        self.netns = f"wtest-kl-{tag}-node"
        self.prefix = prefix or f"wtest-kl-{tag}-pod"
        self.pod_cidr = f"10.244.{index}.0/24"
        self.internal_ip = f"172.18.0.{index + 1}"
        root = env.tmp / name
        self.bin_dir, self.conf_dir = root / "bin", root / "net.d"
        self.state_dir, self.ipam_dir = root / "state", root / "ipam"
        for d in (self.bin_dir, self.conf_dir, self.state_dir):
            d.mkdir(parents=True)
        double = self.bin_dir / "wtest-double"
        double.write_text(DOUBLE)
        double.chmod(0o755)
        self.health_port = free_port()
        sh("ip", "netns", "add", self.netns)
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.kubelet = Process(
            f"kubelet-{name}",
            [
                str(VENV_BIN / "weir-local-kubelet"),
                f"--node-name={name}",
                f"--kubeconfig={env.api.kubeconfig}",
                f"--node-netns={self.netns}",
                f"--netns-prefix={self.prefix}",
                f"--internal-ip={self.internal_ip}",
                f"--pod-cidr={self.pod_cidr}",
                f"--cni-bin-dir={self.bin_dir}:{VENV_BIN}",
                f"--cni-conf-dir={self.conf_dir}",
                f"--state-dir={self.state_dir}",
                f"--health-port={self.health_port}",
                "--heartbeat=2",
                "--log-level=debug",
            ],
            root / "kubelet.log",
        )

    @property
    def netns_inode(self) -> int:
        return os.stat(netns.path_of(self.netns)).st_ino

    def write_conflist(self, body: dict[str, Any] | None = None) -> None:
        body = body or {
            "cniVersion": "1.0.0",
            "name": "weir",
            "plugins": [
                {
                    "type": "wtest-double",
                    "ipam": {"subnet": self.pod_cidr, "dataDir": str(self.ipam_dir)},
                }
            ],
        }
        tmp = self.conf_dir / ".05-weir.tmp"
        tmp.write_text(json.dumps(body))
        tmp.rename(self.conf_dir / "05-weir.conflist")

    def start(self) -> None:
        self.kubelet.start()
        self.kubelet.wait_ready(lambda: http_ok(f"http://127.0.0.1:{self.health_port}/readyz"))

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())

    def rss_mib(self) -> float:
        assert self.kubelet.proc is not None
        status = Path(f"/proc/{self.kubelet.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time the kubelet has used (not its plugins')."""
        assert self.kubelet.proc is not None
        fields = Path(f"/proc/{self.kubelet.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def untaint(self) -> None:
        """What node-loader does once its datapath is ready."""
        self.env.kubectl("taint", "node", self.name, f"{AGENT_TAINT}:NoSchedule-")

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        path = self.ipam_dir / "calls.log"
        if not path.exists():
            return []
        out = [json.loads(line) for line in path.read_text().splitlines()]
        return [c for c in out if command is None or c["command"] == command]

    def pod_netns(self, uid: str) -> str:
        return f"{self.prefix}-{uid}"

    def pod_namespaces(self) -> list[str]:
        return netns.names_with_prefix(self.prefix)

    def cleanup(self) -> None:
        self.kubelet.stop()
        for name in self.pod_namespaces():
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


class Env:
    """An API server and the nodes of one test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.api = ApiServer(tmp, "--bookmark-interval", "1")
        self.nodes: list[Node] = []

    def node(self, name: str, prefix: str = "") -> Node:
        node = Node(self, name, len(self.nodes) + 1, prefix)
        self.nodes.append(node)
        return node

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.api.kubectl(*args, input=input).stdout

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.api.url + path, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def pod(self, ns: str, name: str) -> Any:
        return self.get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def pods(self, ns: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v1/namespaces/{ns}/pods")["items"])

    def apply(self, *objs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objs))

    def namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def wait_running(self, ns: str, name: str, timeout: float = 20) -> dict[str, Any]:
        def running() -> bool:
            p = self.pod(ns, name)
            return bool(p and p["status"].get("phase") == "Running" and ready(p))

        wait_until(running, timeout, f"pod {ns}/{name} Running and Ready")
        return dict(self.pod(ns, name))

    def events(self, ns: str, reason: str) -> list[dict[str, Any]]:
        items = self.get(f"/api/v1/namespaces/{ns}/events")["items"]
        return [e for e in items if e["reason"] == reason]


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    require(os.geteuid() == 0, "needs root (network namespaces)")
    require(shutil.which("ip") is not None, "iproute2 missing")
    require(KUBECTL.exists(), "kubectl missing (run `make setup`)")
    require((VENV_BIN / "weir-local-kubelet").exists(), "weir-local-kubelet not installed")
    e = Env(tmp_path)
    e.api.start()
    try:
        yield e
    finally:
        for node in e.nodes:
            node.kubelet.stop()
        for node in e.nodes:
            node.cleanup()
        e.api.stop()


def ready_node(env: Env, name: str = "node-1", prefix: str = "") -> Node:
    node = env.node(name, prefix)
    node.write_conflist()
    node.start()
    wait_until(lambda: node_ready(env, name), 10, f"node {name} Ready")
    node.untaint()
    return node


def node_ready(env: Env, name: str) -> bool:
    node = env.get(f"/api/v1/nodes/{name}")
    return bool(node and condition(node, "Ready")["status"] == "True")


# ---- tests -----------------------------------------------------------------------------------


def test_node_registers_not_ready_until_the_network_is_configured(env: Env) -> None:
    node = env.node("node-1")
    node.start()
    wait_until(lambda: env.get("/api/v1/nodes/node-1") is not None, 10, "node registered")
    obj = env.get("/api/v1/nodes/node-1")
    assert obj["spec"]["taints"] == [{"key": AGENT_TAINT, "effect": "NoSchedule"}]
    assert obj["spec"]["podCIDRs"] == [node.pod_cidr]
    assert obj["metadata"]["labels"]["node.weir.io/local"] == "true"
    assert {"type": "InternalIP", "address": node.internal_ip} in obj["status"]["addresses"]
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"] == "weir-local://0.1.0"
    assert obj["status"]["nodeInfo"]["kernelVersion"] == os.uname().release
    not_ready = condition(obj, "Ready")
    assert not_ready["status"] == "False"
    assert "NetworkPluginNotReady" in not_ready["message"]
    assert "cni plugin not initialized" in not_ready["message"]
    # A pod bound here waits for the network (the scheduler would not bind it; nodeName does).
    env.namespace("w")
    env.apply(model.pod("w", "early", node="node-1"))
    wait_until(lambda: env.events("w", "NetworkNotReady"), 10, "NetworkNotReady event")
    assert env.pod("w", "early")["status"]["phase"] == "Pending"
    # The conflist appears: Ready flips within a poll, and the waiting pod starts.
    node.write_conflist()
    wait_until(lambda: node_ready(env, "node-1"), 5, "node Ready")
    obj = env.get("/api/v1/nodes/node-1")
    assert condition(obj, "Ready")["reason"] == "KubeletReady"
    assert condition(obj, "Ready")["lastTransitionTime"] >= not_ready["lastTransitionTime"]
    env.wait_running("w", "early", 15)
    # Heartbeats move on; the transition time stays.
    first = condition(env.get("/api/v1/nodes/node-1"), "Ready")
    wait_until(
        lambda: (
            condition(env.get("/api/v1/nodes/node-1"), "Ready")["lastHeartbeatTime"]
            != first["lastHeartbeatTime"]
        ),
        6,
        "a heartbeat",
    )
    again = condition(env.get("/api/v1/nodes/node-1"), "Ready")
    assert again["lastTransitionTime"] == first["lastTransitionTime"]
    # Restarted, the kubelet does not put back the taint node-loader removed.
    node.untaint()
    node.kubelet.stop()
    node.start()
    time.sleep(1)
    assert not env.get("/api/v1/nodes/node-1")["spec"].get("taints")


def test_pods_are_scheduled_wired_served_and_deleted(env: Env) -> None:
    node = env.node("node-1")
    node.write_conflist()
    node.start()
    env.namespace("x")
    env.apply(model.pod("x", "a"), model.pod("x", "b"))
    # The agent-not-ready taint keeps pods off the node until node-loader lifts it.
    wait_until(lambda: env.events("x", "FailedScheduling"), 10, "FailedScheduling")
    cond = condition(env.pod("x", "a"), "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        f"0/1 nodes are available: 1 node(s) had untolerated taint {{{AGENT_TAINT}: }}."
    )
    started = time.monotonic()
    node.untaint()
    a = env.wait_running("x", "a", 15)
    b = env.wait_running("x", "b", 15)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"two pods took {elapsed:.1f}s to run"
    assert a["spec"]["nodeName"] == "node-1"
    st = a["status"]
    assert st["hostIP"] == node.internal_ip and st["hostIPs"] == [{"ip": node.internal_ip}]
    assert st["podIP"].startswith("10.244.1.") and st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["startTime"]
    uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
    cs = st["containerStatuses"][0]
    assert cs["containerID"] == f"weir://{uid_a}" and cs["ready"] and cs["started"]
    assert "running" in cs["state"]
    for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert condition(a, ctype)["status"] == "True"
    assert st["observedGeneration"] == a["metadata"]["generation"]
    # The plugin ran as a runtime runs it, inside the node's namespace.
    add = next(c for c in node.calls("ADD") if c["cid"] == uid_a)
    assert add["netns"] == f"/run/netns/{node.pod_netns(uid_a)}"
    assert add["ifname"] == "eth0" and add["name"] == "weir" and add["cniVersion"] == "1.0.0"
    assert add["args"] == (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a;"
        f"K8S_POD_INFRA_CONTAINER_ID={uid_a};K8S_POD_UID={uid_a}"
    )
    assert add["path"].split(":")[0] == str(node.bin_dir)
    assert add["netns_inode"] == node.netns_inode
    assert add["prevResult"] is None
    # Every declared port answers on TCP and UDP, from another pod's namespace.
    from_b = node.pod_netns(uid_b)
    for port in (80, 81):
        assert http_get(from_b, st["podIP"], port) == (200, "a")
        assert udp_ask(from_b, st["podIP"], port) == "a"
    assert tcp_raw(from_b, st["podIP"], 80, b"hello\n") == "a"
    assert http_get(node.pod_netns(uid_a), b["status"]["podIP"], 80) == (200, "b")
    # kubectl delete: Terminating (not ready) → netns gone → DEL → pod gone.
    seen = watch_pod(env, "x", "a")
    env.kubectl("delete", "pod", "a", "-n", "x", "--wait=false")
    wait_until(lambda: env.pod("x", "a") is None, 15, "pod a gone")
    events = seen()
    terminating = [o for t, o in events if o["metadata"].get("deletionTimestamp")]
    assert terminating and events[-1][0] == "DELETED"
    assert any(condition(o, "Ready")["status"] == "False" for o in terminating)
    assert node.pod_netns(uid_a) not in node.pod_namespaces()
    dels = [c for c in node.calls("DEL") if c["cid"] == uid_a]
    assert len(dels) == 1 and dels[0]["prevResult"]["ips"][0]["address"] == f"{st['podIP']}/32"
    assert not (node.state_dir / "sandboxes" / f"{uid_a}.json").exists()
    assert http_get(node.pod_netns(uid_b), b["status"]["podIP"], 80) == (200, "b")


def watch_pod(env: Env, ns: str, name: str) -> Callable[[], list[tuple[str, dict[str, Any]]]]:
    """Start watching one pod; the returned function waits for DELETED and gives the events."""
    rv = env.pod(ns, name)["metadata"]["resourceVersion"]
    url = (
        f"{env.api.url}/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}"
        f"&fieldSelector=metadata.name%3D{name}&timeoutSeconds=30"
    )
    events: list[tuple[str, dict[str, Any]]] = []
    resp = urllib.request.urlopen(url, timeout=35)

    def read() -> None:
        with resp:
            for line in resp:
                ev = json.loads(line)
                events.append((ev["type"], ev["object"]))
                if ev["type"] == "DELETED":
                    return

    t = threading.Thread(target=read, daemon=True)
    t.start()

    def result() -> list[tuple[str, dict[str, Any]]]:
        t.join(30)
        return events

    return result


def test_restart_keeps_pods_and_cleans_up_what_was_deleted_meanwhile(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    env.apply(*(model.pod("x", n) for n in ("a", "b", "c")))
    before = {n: env.wait_running("x", n) for n in ("a", "b", "c")}
    ips = {n: p["status"]["podIP"] for n, p in before.items()}
    uids = {n: p["metadata"]["uid"] for n, p in before.items()}
    adds = len(node.calls("ADD"))
    node.kubelet.kill()  # kill -9: no chance to clean up
    assert all(node.pod_netns(u) in node.pod_namespaces() for u in uids.values())
    # While it is down, c is deleted; the API server's grace-expiry controller removes it.
    env.kubectl("delete", "pod", "c", "-n", "x", "--grace-period=1", "--wait=false")
    wait_until(lambda: env.pod("x", "c") is None, 15, "pod c removed by the API server")
    node.start()
    wait_until(
        lambda: node.pod_netns(uids["c"]) not in node.pod_namespaces(), 10, "c's netns removed"
    )
    assert [c["cid"] for c in node.calls("DEL")] == [uids["c"]]
    for n in ("a", "b"):
        after = env.wait_running("x", n)
        assert after["status"]["podIP"] == ips[n]  # the same sandbox, the same IP
        # Re-adopted from its record: the status computed is the one stored; nothing written.
        assert after["metadata"]["resourceVersion"] == before[n]["metadata"]["resourceVersion"]
    wait_until(lambda: len(node.calls("CHECK")) == 2, 10, "CHECK of both sandboxes")
    assert len(node.calls("ADD")) == adds  # no new ADD: no new IP
    assert http_get(node.pod_netns(uids["b"]), ips["a"], 80) == (200, "a")
    assert udp_ask(node.pod_netns(uids["a"]), ips["b"], 81) == "b"
    assert sorted(p.name for p in (node.state_dir / "sandboxes").iterdir()) == sorted(
        f"{uids[n]}.json" for n in ("a", "b")
    )


def test_a_watch_outage_and_410_end_in_a_relist_that_sees_everything(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    env.apply(model.pod("x", "a"), model.pod("x", "b"))
    a = env.wait_running("x", "a")
    uid_b = env.wait_running("x", "b")["metadata"]["uid"]

    def post(path: str) -> None:
        req = urllib.request.Request(env.api.url + path, data=b"", method="POST")
        urllib.request.urlopen(req, timeout=5).close()

    # Watches are cut and refused for a while; meanwhile b goes and c comes, and the history
    # is compacted, so the kubelet's resourceVersion is too old when it gets back: 410.
    post("/debug/weir/drop-watches?refuseSeconds=2")
    env.kubectl("delete", "pod", "b", "-n", "x", "--grace-period=0", "--force")
    env.apply(model.pod("x", "c", node="node-1"))
    post("/debug/weir/compact")
    env.wait_running("x", "c", 20)
    wait_until(lambda: node.pod_netns(uid_b) not in node.pod_namespaces(), 10, "b torn down")
    assert [c["cid"] for c in node.calls("DEL")] == [uid_b]
    assert "listing again" in node.kubelet.log.read_text()
    assert http_get(node.pod_netns(a["metadata"]["uid"]), a["status"]["podIP"], 80) == (200, "a")


def test_a_broken_sandbox_is_rebuilt_after_a_restart(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    env.apply(model.pod("x", "a"), model.pod("x", "b"))
    a = env.wait_running("x", "a")
    uid_b = env.wait_running("x", "b")["metadata"]["uid"]
    uid = a["metadata"]["uid"]
    node.kubelet.kill()
    # Someone deletes the pod's interface while the kubelet is down: CHECK must catch it.
    sh("ip", "-n", node.pod_netns(uid), "link", "del", "eth0")
    node.start()
    wait_until(lambda: env.events("x", "SandboxChanged"), 10, "SandboxChanged event")
    wait_until(lambda: len([c for c in node.calls("ADD") if c["cid"] == uid]) == 2, 10, "ADD")
    a2 = env.wait_running("x", "a")
    assert [c["command"] for c in node.calls() if c["cid"] == uid][-3:] == ["CHECK", "DEL", "ADD"]
    assert http_get(node.pod_netns(uid_b), a2["status"]["podIP"], 80) == (200, "a")


def test_a_crash_during_add_is_repaired_at_restart(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    hang = node.ipam_dir / "hang-add"
    node.ipam_dir.mkdir(parents=True, exist_ok=True)
    hang.write_text("")
    env.apply(model.pod("x", "a"))
    wait_until(lambda: node.calls("ADD"), 10, "ADD started")
    uid = env.pod("x", "a")["metadata"]["uid"]
    node.kubelet.kill()  # the ADD's outcome is now unknown to the kubelet
    record = json.loads((node.state_dir / "sandboxes" / f"{uid}.json").read_text())
    assert record["stage"] == "adding"
    hang.unlink()  # the orphaned plugin gives up without wiring anything
    node.start()
    a = env.wait_running("x", "a", 15)
    commands = [c["command"] for c in node.calls() if c["cid"] == uid]
    assert commands == ["ADD", "DEL", "ADD"]
    assert a["status"]["podIP"] == "10.244.1.2"  # DEL released the first allocation
    assert udp_ask(node.pod_netns(uid), a["status"]["podIP"], 80) == "a"


def test_cni_errors_are_reported_and_retried(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    node.ipam_dir.mkdir(parents=True, exist_ok=True)
    (node.ipam_dir / "fail-add").write_text("node-loader is not answering")
    env.apply(model.pod("x", "a"))
    wait_until(lambda: env.events("x", "FailedCreatePodSandBox"), 10, "FailedCreatePodSandBox")
    event = env.events("x", "FailedCreatePodSandBox")[0]
    uid = env.pod("x", "a")["metadata"]["uid"]
    assert event["message"] == (
        f'Failed to create pod sandbox: failed to setup network for sandbox "{uid}": '
        'plugin type="wtest-double" failed (add): node-loader is not answering'
    )
    assert event["source"] == {"component": "kubelet", "host": "node-1"}
    pod = env.pod("x", "a")
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    # Every failed ADD is undone at once (DEL, then the namespace goes) before a retry.
    commands = [c["command"] for c in node.calls()]
    assert commands[:2] == ["ADD", "DEL"]
    assert all(x != y for x, y in itertools.pairwise(commands))
    (node.ipam_dir / "fail-add").unlink()
    env.wait_running("x", "a", 20)
    assert len([c for c in node.calls() if c["command"] == "DEL"]) >= 1


def test_nodes_sharing_a_netns_prefix_leave_each_other_alone(env: Env) -> None:
    # `weir dev` names every pod namespace <cluster id>-<uid>, whatever its node.
    prefix = f"wtest-kl-{secrets.token_hex(3)}"
    n1 = ready_node(env, "node-1", prefix)
    n2 = ready_node(env, "node-2", prefix)
    env.namespace("x")
    env.apply(
        model.pod("x", "a1", node="node-1"),
        model.pod("x", "b1", node="node-1"),
        model.pod("x", "a2", node="node-2"),
    )
    uids = {n: env.wait_running("x", n)["metadata"]["uid"] for n in ("a1", "b1", "a2")}
    ip_a2 = env.pod("x", "a2")["status"]["podIP"]
    # node-1 restarts and finds node-2's namespace under the prefix, with no record of its own.
    n1.kubelet.kill()
    n1.start()
    wait_until(lambda: len(n1.calls("CHECK")) == 2, 10, "node-1 re-adopted its two pods")
    time.sleep(1.5)
    assert n1.calls("DEL") == [] and n2.calls("DEL") == []
    assert n1.pod_netns(uids["a2"]) in n2.pod_namespaces()
    assert http_get(n2.pod_netns(uids["a2"]), ip_a2, 80) == (200, "a2")
    # A namespace of node-1's own with no record left (a wiped record; its pod deleted while
    # node-1 was down) is found by its veth into node-1, and torn down; node-2's stays.
    n1.kubelet.kill()
    (n1.state_dir / "sandboxes" / f"{uids['a1']}.json").unlink()
    env.kubectl("delete", "pod", "a1", "-n", "x", "--grace-period=0", "--force")
    n1.start()
    wait_until(lambda: n1.calls("DEL"), 10, "DEL of the unrecorded sandbox")
    assert [c["cid"] for c in n1.calls("DEL")] == [uids["a1"]]
    wait_until(lambda: n1.pod_netns(uids["a1"]) not in n1.pod_namespaces(), 5, "netns gone")
    assert n2.pod_netns(uids["a2"]) in n2.pod_namespaces() and n2.calls("DEL") == []
    assert http_get(n1.pod_netns(uids["b1"]), env.pod("x", "b1")["status"]["podIP"], 81) == (
        200,
        "b1",
    )


def test_host_network_pod_is_served_in_the_node_namespace(env: Env) -> None:
    node = ready_node(env)
    env.namespace("x")
    host = model.pod("x", "agent")
    host["spec"]["hostNetwork"] = True
    host["spec"]["containers"][0]["ports"] = [{"containerPort": 9099}]
    env.apply(host, model.pod("x", "a"))
    agent = env.wait_running("x", "agent")
    a = env.wait_running("x", "a")
    assert agent["status"]["podIP"] == node.internal_ip
    assert [c["cid"] for c in node.calls("ADD")] == [a["metadata"]["uid"]]  # no CNI for it
    # From a pod, the node is its gateway: the host-network pod answers there.
    assert http_get(node.pod_netns(a["metadata"]["uid"]), "169.254.1.1", 9099) == (200, "agent")
    env.kubectl("delete", "pod", "agent", "-n", "x")
    assert node.calls("DEL") == [] and node_ready(env, node.name)


def test_two_nodes_share_pods_round_robin(env: Env) -> None:
    n1 = ready_node(env, "node-1")
    n2 = ready_node(env, "node-2")
    env.namespace("x")
    env.apply(*(model.pod("x", f"p{i}") for i in range(4)))
    pinned = model.pod("x", "pinned")
    pinned["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-2"}
    env.apply(pinned)
    placed = {f"p{i}": env.wait_running("x", f"p{i}")["spec"]["nodeName"] for i in range(4)}
    assert sorted(placed.values()) == ["node-1", "node-1", "node-2", "node-2"]
    assert env.wait_running("x", "pinned")["spec"]["nodeName"] == "node-2"
    for node in (n1, n2):
        names = {c["args"].split("K8S_POD_NAME=")[1].split(";")[0] for c in node.calls("ADD")}
        assert names == {p for p, n in placed.items() if n == node.name} | (
            {"pinned"} if node is n2 else set()
        )


def test_real_weir_cni(env: Env) -> None:
    from tests.support.cni_harness import NodeLoaderDouble

    require((VENV_BIN / "weir-cni").exists(), "weir-cni not installed")
    node = env.node("node-1")
    socket_path = env.tmp / "node-loader.sock"
    loader = NodeLoaderDouble(socket_path)
    loader.start()
    try:
        node.write_conflist(
            conflist(
                PluginConfig(
                    node_loader_socket=str(socket_path),
                    subnet=node.pod_cidr,
                    ipam_data_dir=str(env.tmp / "weir-cni-ipam"),
                )
            )
        )
        node.start()
        wait_until(lambda: node_ready(env, "node-1"), 10, "node Ready")
        node.untaint()
        env.namespace("x")
        env.apply(model.pod("x", "a"), model.pod("x", "b"))
        a, b = env.wait_running("x", "a", 30), env.wait_running("x", "b", 30)
        uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
        assert sorted(loader.calls("PUT")) == sorted([uid_a, uid_b])
        assert http_get(node.pod_netns(uid_b), a["status"]["podIP"], 80) == (200, "a")
        assert udp_ask(node.pod_netns(uid_a), b["status"]["podIP"], 81) == "b"
        # Restart: weir-cni's CHECK (which asks node-loader) passes; same IPs.
        node.kubelet.kill()
        node.start()
        wait_until(lambda: len(loader.calls("GET")) >= 2, 15, "CHECK asked node-loader")
        assert env.wait_running("x", "a")["status"]["podIP"] == a["status"]["podIP"]
        assert http_get(node.pod_netns(uid_a), b["status"]["podIP"], 80) == (200, "b")
        env.kubectl("delete", "pod", "a", "-n", "x")
        assert env.pod("x", "a") is None
        assert loader.calls("DELETE") == [uid_a]
        assert node.pod_netns(uid_a) not in node.pod_namespaces()
    finally:
        node.cleanup()
        env.nodes.remove(node)
        loader.stop()


def test_250_pods_on_one_node(env: Env) -> None:
    count = 250
    node = ready_node(env)
    env.namespace("load")
    rss_idle = node.rss_mib()
    cpu_before = node.cpu_seconds()
    pods = []
    for i in range(count):
        p = model.pod("load", f"p{i:03d}")  # ports 80 and 81: four sockets a pod
        pods.append(p)
    started = time.monotonic()
    env.apply(*pods)
    applied = time.monotonic() - started

    def all_running() -> bool:
        items = env.pods("load")
        return len(items) == count and all(
            p["status"].get("phase") == "Running" and ready(p) for p in items
        )

    wait_until(all_running, 180, f"{count} pods Running", interval=0.25)
    elapsed = time.monotonic() - started
    rss = node.rss_mib()
    cpu = node.cpu_seconds() - cpu_before
    items = env.pods("load")
    assert len({p["status"]["podIP"] for p in items}) == count
    assert len(node.pod_namespaces()) == count
    serving = next(
        line for line in node.metrics().splitlines() if line.startswith("weir_kubelet_sandboxes")
    )
    assert serving.endswith(f" {float(count)}")
    by_name = {p["metadata"]["name"]: p for p in items}
    client = node.pod_netns(by_name["p000"]["metadata"]["uid"])
    for name in ("p001", "p123", "p249"):
        target = by_name[name]["status"]["podIP"]
        assert http_get(client, target, 81) == (200, name)
        assert udp_ask(client, target, 80) == name
    started_delete = time.monotonic()
    env.kubectl("delete", "pods", "--all", "-n", "load", "--wait=false")
    wait_until(
        lambda: not env.pods("load") and not node.pod_namespaces(),
        180,
        "all pods and their namespaces gone",
        interval=0.25,
    )
    deleted = time.monotonic() - started_delete
    print(
        f"\n{count} pods on one node: kubectl apply {applied:.1f}s, all Running after "
        f"{elapsed:.1f}s ({count / elapsed:.0f} pods/s); kubelet RSS {rss_idle:.0f} MiB idle, "
        f"{rss:.0f} MiB with {count} pods ({4 * count} sockets), {cpu:.1f} CPU-s of its own; "
        f"all deleted and torn down in {deleted:.1f}s"
    )
    assert elapsed < 120
    assert rss < 150, f"kubelet RSS {rss:.0f} MiB with {count} pods"
    with contextlib.suppress(OSError):
        (env.tmp / "result.txt").write_text(f"{elapsed:.1f} {rss:.1f} {deleted:.1f}\n")


def test_in_a_weir_dev_cluster_with_node_loader_and_weir_cni(tmp_path: Path) -> None:
    """The kubelet as `weir dev up` runs it: real node-loader (conflist, taint removal,
    datapath), real weir-cni, the pod namespaces named <cluster id>-<uid>."""
    from tests.support.dev import DevCluster

    cluster = DevCluster(tmp_path / "dev", nodes=1)
    cluster.up()
    try:

        def ready_and_untainted() -> bool:
            node = cluster.kubectl_json("get", "node", "node-1")
            # node-loader lifts agent-not-ready; the kubelet sees its conflist within a second.
            return not node["spec"].get("taints") and condition(node, "Ready")["status"] == "True"

        wait_until(ready_and_untainted, 10, "node-1 Ready and untainted")
        cluster.kubectl("create", "namespace", "x")
        objs = [model.pod("x", "a"), model.pod("x", "b")]
        cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objs))
        cluster.wait_pods_running(["x"], 2, timeout=60)
        pods = {
            p["metadata"]["name"]: p
            for p in cluster.kubectl_json("get", "pods", "-n", "x")["items"]
        }
        ips = {n: p["status"]["podIP"] for n, p in pods.items()}
        ns_of = {n: f"{cluster.cluster_id}-{p['metadata']['uid']}" for n, p in pods.items()}
        assert http_get(ns_of["b"], ips["a"], 80) == (200, "a")
        assert udp_ask(ns_of["a"], ips["b"], 81) == "b"
        # kill -9 the kubelet; the supervisor starts it again; it re-adopts both pods.
        pid = int(cluster.info["components"]["kubelet/node-1"]["pid"])
        os.kill(pid, 9)
        wait_until(
            lambda: int(cluster.info["components"]["kubelet/node-1"]["pid"]) != pid,
            30,
            "kubelet restarted by the supervisor",
        )
        time.sleep(2)
        after = {
            p["metadata"]["name"]: p
            for p in cluster.kubectl_json("get", "pods", "-n", "x")["items"]
        }
        for n in ("a", "b"):
            assert after[n]["status"]["podIP"] == ips[n]
            assert after[n]["metadata"]["resourceVersion"] == pods[n]["metadata"]["resourceVersion"]
        assert http_get(ns_of["a"], ips["b"], 81) == (200, "b")
        cluster.kubectl("delete", "pod", "a", "-n", "x")
        assert not netns.is_netns(netns.path_of(ns_of["a"]))
        assert http_get(ns_of["b"], ips["b"], 80) == (200, "b")
    finally:
        cluster.down()
