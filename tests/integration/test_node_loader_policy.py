"""node-loader enforcing NetworkPolicy end to end: real netns pods, real BPF, real NATS.

The topology is test_node_loader.py's (a node namespace, pods wired as weir-cni wires them);
KV weir-ipcache and weir-policy are written here the way identity-allocator and policy-compiler
would. Traffic is real sockets opened inside the pods' namespaces; verdicts are checked by
what gets through, by the Flows on weir.flows.<node>, by /metrics and by `weir bpf`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from weir import catalog
from weir import netns as weir_netns
from weir.codec import Codec
from weir.identity import Reserved
from weir.models import (
    BarrierReply,
    BarrierRequest,
    DirectionPolicy,
    EndpointPolicy,
    Flow,
    FlowDirection,
    Identity,
    IdentityLabels,
    IPCacheEntry,
    IPCacheKind,
    PolicyEntry,
    Verdict,
)
from weir_node_loader.datapath_maps import CtRow, DatapathMaps
from weir_node_loader.maps import CtFlag, Direction

from tests.integration.test_node_loader import (
    NODE,
    Loader,
    Pod,
    Topology,
    in_netns,
    kv_put,
    node_loader,
    pins_root,
    topology,
)
from tests.support.processes import VENV_BIN, ApiServer, NatsServer, wait_until

pytestmark = pytest.mark.integration

A_ID, B_ID = 300, 301
TCP, UDP = 6, 17


# --- the cluster's side, as the other services would write it --------------------------------


def ipcache_for(*pods: tuple[Pod, int]) -> dict[str, IPCacheEntry]:
    entries = [
        IPCacheEntry(prefix="0.0.0.0/0", identity=Reserved.WORLD, kind=IPCacheKind.WORLD),
        IPCacheEntry(
            prefix="172.18.0.2/32", identity=Reserved.REMOTE_NODE, kind=IPCacheKind.NODE, node=NODE
        ),
        IPCacheEntry(
            prefix="172.18.0.3/32",
            identity=Reserved.REMOTE_NODE,
            kind=IPCacheKind.NODE,
            node="node-2",
        ),
    ]
    for p, identity in pods:
        entries.append(
            IPCacheEntry(
                prefix=f"{p.ip}/32",
                identity=identity,
                kind=IPCacheKind.POD,
                pod_namespace="default",
                pod_name=p.name,
                node=NODE,
            )
        )
    return {catalog.ipcache_key(e.prefix): e for e in entries}


def policy_of(
    pod: Pod,
    identity: int,
    *,
    ingress: list[PolicyEntry] | None = None,
    egress: list[PolicyEntry] | None = None,
    ingress_cookie: int = 0,
    cookies: dict[int, str] | None = None,
    uid: str | None = None,
) -> EndpointPolicy:
    """None: not enforced; a list: enforced with those entries."""
    return EndpointPolicy(
        node=NODE,
        pod_namespace="default",
        pod_name=pod.name,
        pod_uid=pod.uid if uid is None else uid,
        identity=identity,
        ingress=DirectionPolicy(
            enforced=ingress is not None,
            default_cookie=ingress_cookie,
            entries=tuple(ingress or ()),
        ),
        egress=DirectionPolicy(enforced=egress is not None, entries=tuple(egress or ())),
        cookies=cookies or {},
    )


def barrier(url: str, wait: float = 10.0) -> BarrierReply:
    async def ask() -> BarrierReply:
        codec = Codec(catalog.BARRIER_SCHEMA)
        nc = await nats.connect(url)
        try:
            msg = await nc.request(
                catalog.barrier_subject("node-loader", NODE),
                codec.encode(BarrierRequest(wait_seconds=wait)),
                timeout=wait + 5,
            )
        finally:
            await nc.close()
        reply = codec.decode(msg.data)
        assert isinstance(reply, BarrierReply)
        return reply

    return asyncio.run(ask())


def converged(loader: Loader) -> None:
    reply = barrier(loader.nats.url)
    assert reply.converged, reply.detail


class FlowTap:
    """Collects the Flows published on weir.flows.<node> (a thread with its own loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.flows: list[Flow] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            codec = Codec(catalog.FLOWS_SCHEMA)
            nc = await nats.connect(self.url)

            async def on(msg: Any) -> None:
                flow = codec.decode(msg.data)
                assert isinstance(flow, Flow)
                self.flows.append(flow)

            await nc.subscribe(catalog.flows_subject(NODE), cb=on)
            await nc.flush()
            self._ready.set()
            await self._stop.wait()
            await nc.close()

        asyncio.run(main())

    def __enter__(self) -> FlowTap:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def wait_for(self, what: str, match: Any, timeout: float = 10) -> Flow:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in list(self.flows):
                if match(f):
                    return f
            time.sleep(0.05)
        raise AssertionError(f"no flow {what} among {self.flows}")


# --- traffic between pods -----------------------------------------------------------------------


@contextlib.contextmanager
def inside(pod: Pod) -> Iterator[None]:
    with weir_netns.entered(Path(f"/run/netns/{pod.netns}")):
        yield


@dataclass
class Servers:
    """TCP and UDP echo servers in one pod (threads), closed by `close`."""

    pod: Pod
    sockets: list[socket.socket] = field(default_factory=list)
    accepted: list[socket.socket] = field(default_factory=list)

    def tcp(self, port: int) -> None:
        with inside(self.pod):
            s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.pod.ip, port))
        s.listen(16)
        self.sockets.append(s)
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def udp(self, port: int) -> None:
        with inside(self.pod):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.pod.ip, port))
        self.sockets.append(s)

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    data, peer = s.recvfrom(4096)
                    if peer is None:  # shut down: recvfrom returns with no sender
                        return
                    s.sendto(data, peer)

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        for s in self.sockets + self.accepted:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def tcp_connect(client: Pod, ip: str, port: int, timeout: float = 1.5) -> socket.socket | None:
    """A connected socket from `client`, or None when the connection is not established."""
    with inside(client):
        s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
    except OSError:
        s.close()
        return None
    return s


def tcp_echo(client: Pod, ip: str, port: int) -> bool:
    s = tcp_connect(client, ip, port)
    if s is None:
        return False
    with s:
        s.sendall(b"hello")
        return s.recv(16) == b"hello"


def udp_echo(client: Pod, ip: str, port: int, timeout: float = 1.0) -> bool:
    with inside(client):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(timeout)
        s.sendto(b"ping", (ip, port))
        try:
            data, _ = s.recvfrom(16)
        except OSError:
            return False
        return data == b"ping"


def pings(client: Pod, ip: str) -> bool:
    return in_netns(client.netns, "ping", "-c", "1", "-W", "1", ip).returncode == 0


def weir(*args: str, nats_url: str = "") -> subprocess.CompletedProcess[str]:
    env_args = ["--nats-url", nats_url] if nats_url else []
    return subprocess.run(
        [str(VENV_BIN / "weir"), "bpf", *args, *env_args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def topo() -> Iterator[Topology]:
    with topology() as t:
        yield t


@pytest.fixture
def bpf_root() -> Iterator[Path]:
    with pins_root() as root:
        yield root


def loader_with(name: str, env: dict[str, str]) -> Any:
    """A `loader` fixture whose node-loader has these extra settings."""

    @pytest.fixture(name=name)
    def fixture(
        tmp_path: Path, nats_server: NatsServer, api: ApiServer, topo: Topology, bpf_root: Path
    ) -> Iterator[Loader]:
        with node_loader(tmp_path, nats_server, api, topo, bpf_root, env) as nl:
            yield nl

    return fixture


loader = loader_with("loader", {"WEIR_CT_GC_SECONDS": "1"})
impatient = loader_with("impatient", {"WEIR_POLICY_WAIT_SECONDS": "2"})


@pytest.fixture
def servers() -> Iterator[list[Servers]]:
    made: list[Servers] = []
    try:
        yield made
    finally:
        for s in made:
            s.close()


# --- policy on real traffic ---------------------------------------------------------------------


def test_policy_allows_and_denies_real_traffic_replies_pass_and_flows_name_it(
    loader: Loader, topo: Topology, servers: list[Servers]
) -> None:
    loader.start()
    a, b = topo.add_pod(1), topo.add_pod(2)
    kv_put(loader.nats.url, catalog.IPCACHE, ipcache_for((a, A_ID), (b, B_ID)))
    cookies = {
        10: "default/isolate-a: ingress",
        20: "default/isolate-b: ingress",
        21: "default/allow-a: ingress rule 0, TCP 8080",
        22: "default/allow-a: ingress rule 1, UDP 5353",
        23: "default/allow-a-all: ingress rule 0",
    }
    # a: nothing may connect in (so replies reach it through conntrack only), may send anything.
    pol_a = policy_of(a, A_ID, ingress=[], ingress_cookie=10, cookies=cookies)
    # b: only a, on TCP 8080 and UDP 5353.
    b_rules = [
        PolicyEntry(identity=A_ID, protocol=TCP, port=8080, end_port=8080, cookie=21),
        PolicyEntry(identity=A_ID, protocol=UDP, port=5353, end_port=5353, cookie=22),
    ]
    pol_b = policy_of(b, B_ID, ingress=b_rules, ingress_cookie=20, cookies=cookies)
    assert loader.put(a, policy=pol_a)[0] == 200
    assert loader.put(b, policy=pol_b)[0] == 200
    converged(loader)
    sa, sb = Servers(a), Servers(b)
    servers += [sa, sb]
    for port in (8080, 9090):
        sb.tcp(port)
    for port in (5353, 5454):
        sb.udp(port)
    sa.tcp(8080)

    with FlowTap(loader.nats.url) as tap:
        assert tcp_echo(a, b.ip, 8080)  # allowed; b's answers pass a's deny-all ingress
        assert not tcp_echo(a, b.ip, 9090)  # no entry for 9090
        assert udp_echo(a, b.ip, 5353)
        assert not udp_echo(a, b.ip, 5454)
        assert not pings(a, b.ip)  # no entry for ICMP
        assert not tcp_echo(b, a.ip, 8080)  # a's ingress: isolated
        denied = tap.wait_for(
            "deny a -> b:9090",
            lambda f: f.verdict == Verdict.DENY and f.dst_port == 9090,
        )
        assert denied.direction == FlowDirection.INGRESS and denied.reason == "policy-denied"
        assert (denied.local_pod, denied.remote_pod) == (f"default/{b.name}", f"default/{a.name}")
        assert (denied.local_identity, denied.remote_identity) == (B_ID, A_ID)
        assert (denied.cookie, denied.policy) == (20, "default/isolate-b: ingress")
        assert (denied.src_ip, denied.dst_ip, denied.protocol) == (a.ip, b.ip, TCP)
        allowed = tap.wait_for(
            "allow a -> b:8080", lambda f: f.verdict == Verdict.ALLOW and f.dst_port == 8080
        )
        assert allowed.policy == cookies[21] and allowed.reason == "policy"
        tap.wait_for(
            "deny b -> a:8080",
            lambda f: (
                f.verdict == Verdict.DENY
                and f.local_pod == f"default/{a.name}"
                and f.policy == cookies[10]
            ),
        )

    # A policy change reaches the kernel: every protocol from a, ping included.
    all_from_a = [*b_rules, PolicyEntry(identity=A_ID, protocol=0, cookie=23)]
    loader.put_policy(policy_of(b, B_ID, ingress=all_from_a, ingress_cookie=20, cookies=cookies))
    converged(loader)
    assert pings(a, b.ip)
    assert tcp_echo(a, b.ip, 9090)

    metrics = loader.service.metrics()
    assert 'weir_datapath_drops_total{direction="ingress",reason="policy-denied"}' in metrics
    assert 'weir_datapath_verdicts_total{direction="ingress",reason="policy",verdict="allow"}' in (
        metrics
    )
    assert 'weir_datapath_conntrack_packets_total{direction="ingress",reason="reply"}' in metrics
    assert 'weir_flows_published_total{verdict="deny"}' in metrics
    assert 'weir_datapath_events_total{outcome="lost"} 0.0' in metrics

    # weir bpf: the policy named (identities from KV weir-identities), the ipcache, conntrack.
    ids = {
        catalog.identity_id_key(A_ID): Identity(
            id=A_ID, labels=IdentityLabels(namespace="default", pod_labels={"app": "a"})
        )
    }
    kv_put(loader.nats.url, catalog.IDENTITIES, ids)
    shown = weir(
        "policy",
        "get",
        f"default/{b.name}",
        "--bpf-root",
        str(loader.bpf_root),
        "--node",
        NODE,
        "-o",
        "json",
        nats_url=loader.nats.url,
    )
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["ingress"]["enforced"] and not view["egress"]["enforced"]
    assert view["ingress"]["default_policy"] == cookies[20]
    entries = {(e["protocol"], e["ports"]): e for e in view["ingress"]["entries"]}
    assert entries[("TCP", "8080")]["peer"] == "ns=default app=a"
    assert entries[("TCP", "8080")]["policy"] == cookies[21]
    assert entries[("any", "any")]["verdict"] == "allow"
    table = weir(
        "policy",
        "get",
        f"default/{b.name}",
        "--bpf-root",
        str(loader.bpf_root),
        "--node",
        NODE,
        nats_url=loader.nats.url,
    )
    assert "ingress: enforced by default/isolate-b" in table.stdout, table.stdout
    assert "egress: not enforced" in table.stdout
    ipc = json.loads(
        weir(
            "ipcache", "list", "--bpf-root", str(loader.bpf_root), "--node", NODE, "-o", "json"
        ).stdout
    )
    by_prefix = {r["prefix"]: r for r in ipc}
    assert by_prefix["172.18.0.2/32"]["identity"] == Reserved.HOST  # this node
    assert by_prefix["172.18.0.3/32"]["identity"] == Reserved.REMOTE_NODE
    assert by_prefix["169.254.1.1/32"]["local"]
    assert by_prefix[f"{a.ip}/32"]["identity"] == A_ID
    cts = json.loads(
        weir("ct", "list", "--bpf-root", str(loader.bpf_root), "--node", NODE, "-o", "json").stdout
    )
    assert any(
        r["dst"] == f"{b.ip}:8080" and r["direction"] == "ingress" and r["protocol"] == "tcp"
        for r in cts
    )


# --- CNI ADD waits for the policy ---------------------------------------------------------------


def test_a_registration_returns_only_once_its_policy_is_in_the_kernel(
    impatient: Loader, topo: Topology
) -> None:
    loader = impatient
    loader.start()
    pod = topo.add_pod(1)
    answer: list[tuple[int, Any]] = []
    started = time.monotonic()
    put = threading.Thread(target=lambda: answer.append(loader.register(pod)))
    put.start()
    time.sleep(1.0)
    assert put.is_alive() and not answer  # waiting for weir-policy
    assert topo.filters(pod.veth) == {"ingress": [], "egress": []}  # nothing programmed yet
    loader.put_policy(policy_of(pod, 1000, ingress=[], ingress_cookie=1))
    put.join(10)
    waited = time.monotonic() - started
    assert answer and answer[0][0] == 200, answer
    assert 1.0 <= waited < 2.0  # answered as soon as the policy arrived
    assert [f["options"]["bpf_name"] for f in topo.filters(pod.veth)["ingress"]] == [
        "weir_from_pod"
    ]
    shown = weir(
        "policy",
        "get",
        f"default/{pod.name}",
        "--bpf-root",
        str(loader.bpf_root),
        "--node",
        NODE,
        "--no-names",
        "-o",
        "json",
    )
    assert json.loads(shown.stdout)["ingress"]["enforced"]

    # No policy at all: 503 after the wait, and nothing is left programmed.
    other = topo.add_pod(2)
    started = time.monotonic()
    status, doc = loader.register(other)
    assert status == 503 and "no policy for default/" in doc["error"], doc
    assert 2.0 <= time.monotonic() - started < 4.0
    assert topo.filters(other.veth) == {"ingress": [], "egress": []}
    assert loader.endpoint(other)[0] == 404
    # A policy for another pod of the same name (an older uid) does not count either.
    loader.put_policy(policy_of(other, 1001, ingress=[], uid="uid-of-an-older-pod"))
    status, doc = loader.register(other)
    assert status == 503 and f"(uid {other.uid})" in doc["error"]
    metrics = loader.service.metrics()
    assert 'weir_node_loader_policy_waits_total{outcome="timeout"} 2.0' in metrics
    assert 'weir_node_loader_policy_waits_total{outcome="arrived"} 1.0' in metrics


# --- restarts -----------------------------------------------------------------------------------


class Exchange:
    """A TCP connection exchanging a message every `period` until stopped; records gaps."""

    def __init__(self, conn: socket.socket, period: float = 0.02) -> None:
        self.conn = conn
        self.period = period
        self.sent = 0
        self.errors: list[str] = []
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.conn.settimeout(5)
        last = time.monotonic()
        while not self._stop.is_set():
            message = f"{self.sent:08d}".encode()
            try:
                self.conn.sendall(message)
                got = b""
                while len(got) < len(message):
                    chunk = self.conn.recv(len(message) - len(got))
                    if not chunk:
                        raise OSError("connection closed")
                    got += chunk
            except OSError as e:
                self.errors.append(f"message {self.sent}: {e}")
                return
            if got != message:
                self.errors.append(f"message {self.sent}: got {got!r}")
                return
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.sent += 1
            time.sleep(self.period)

    def start(self) -> Exchange:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_long_lived_connection_survives_three_kill_9_restarts(
    loader: Loader, topo: Topology, servers: list[Servers]
) -> None:
    loader.start()
    a, b = topo.add_pod(1), topo.add_pod(2)
    kv_put(loader.nats.url, catalog.IPCACHE, ipcache_for((a, A_ID), (b, B_ID)))
    allow = [PolicyEntry(identity=A_ID, protocol=TCP, port=7000, end_port=7000, cookie=5)]
    assert loader.put(a, policy=policy_of(a, A_ID, ingress=[]))[0] == 200
    assert loader.put(b, policy=policy_of(b, B_ID, ingress=allow, ingress_cookie=6))[0] == 200
    converged(loader)
    sb = Servers(b)
    servers.append(sb)
    sb.tcp(7000)
    conn = tcp_connect(a, b.ip, 7000)
    assert conn is not None
    exchange = Exchange(conn).start()
    # Now policy denies every new connection to b; the established one goes on.
    loader.put_policy(policy_of(b, B_ID, ingress=[], ingress_cookie=6))
    converged(loader)
    assert tcp_connect(a, b.ip, 7000) is None
    ids = {p.veth: topo.prog_ids(p.veth) for p in (a, b)}
    figures = []
    try:
        for restart in range(3):
            before = exchange.sent
            loader.service.kill()  # kill -9: no cleanup of any kind
            time.sleep(1.0)
            during = exchange.sent
            assert tcp_connect(a, b.ip, 7000) is None  # still refused with node-loader down
            loader.start()
            converged(loader)
            assert tcp_connect(a, b.ip, 7000) is None  # and after it is back
            detail = loader.readyz()["checks"]["endpoints"]["detail"]
            assert detail == "reconciled at start: 2 adopted, 0 repaired, 0 removed"
            assert {p.veth: topo.prog_ids(p.veth) for p in (a, b)} == ids
            time.sleep(0.5)
            after = exchange.sent
            assert during > before and after > during, (before, during, after, exchange.errors)
            figures.append((restart + 1, during - before, after - during))
    finally:
        exchange.stop()
        conn.close()
    assert exchange.errors == []
    assert exchange.max_gap < 1.0
    print(
        f"long-lived connection: {exchange.sent} messages exchanged over 3 kill -9 restarts, "
        f"longest gap {exchange.max_gap * 1000:.0f} ms; per restart (n, while down, after): "
        f"{figures}"
    )


# --- conntrack GC -------------------------------------------------------------------------------


def test_gc_removes_expired_entries_only(
    loader: Loader, topo: Topology, servers: list[Servers]
) -> None:
    loader.start()
    a, b = topo.add_pod(1), topo.add_pod(2)
    assert loader.put(a)[0] == 200 and loader.put(b)[0] == 200
    sb = Servers(b)
    servers.append(sb)
    sb.tcp(7000)
    live = tcp_connect(a, b.ip, 7000)
    assert live is not None
    now = time.monotonic_ns()
    s = 1_000_000_000

    def entry(sport: int, protocol: int, flags: int, idle: float) -> CtRow:
        return CtRow(
            saddr=a.ip,
            daddr="10.99.0.1",
            sport=sport,
            dport=53,
            protocol=protocol,
            direction=Direction.FROM_POD,
            created_ns=now - 7200 * s,
            last_seen_ns=now - int(idle * s),
            cookie=0,
            remote_identity=2,
            flags=flags,
        )

    seeded = {
        "udp idle 120 s": (entry(1, UDP, 0, 120), False),
        "tcp closed idle 30 s": (entry(2, TCP, CtFlag.REPLIED | CtFlag.RST, 30), False),
        "tcp opening idle 90 s": (entry(3, TCP, CtFlag.SYN, 90), False),
        "udp idle 5 s": (entry(4, UDP, CtFlag.REPLIED, 5), True),
        "tcp established idle 1 h": (entry(5, TCP, CtFlag.SYN | CtFlag.REPLIED, 3600), True),
    }
    with DatapathMaps.open(loader.pin_dir) as dp:
        for row, _ in seeded.values():
            dp.ct_put(row)

        def remaining() -> set[int]:
            return {r.sport for r in dp.ct_rows() if r.daddr == "10.99.0.1"}

        wait_until(lambda: remaining() == {4, 5}, 10, "GC of the expired entries")
        time.sleep(2.5)  # more passes: nothing else goes
        assert remaining() == {4, 5}
        tracked = [r for r in dp.ct_rows() if b.ip in (r.daddr, r.saddr)]
    assert len(tracked) == 2  # the live connection: at a's egress and at b's ingress
    with live:
        live.sendall(b"still")
        assert live.recv(8) == b"still"
    metrics = loader.service.metrics()
    assert 'weir_conntrack_gc_deleted_total{protocol="udp",state="new"} 1.0' in metrics
    assert 'weir_conntrack_gc_deleted_total{protocol="tcp",state="closed"} 1.0' in metrics
    assert 'weir_conntrack_gc_deleted_total{protocol="tcp",state="syn-sent"} 1.0' in metrics
