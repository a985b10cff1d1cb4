"""Benchmark: what Weir's policy datapath costs a packet, against no program and iptables.

Measured exactly as ../shared/BENCH-BASELINE.md measured its anchors, so the ratios compare:
sockperf ping-pong (UDP and TCP, 64-byte messages, RTT/2 in µs), iperf3 -P1 (Gbit/s) and wrk
new-connection rate against nginx (`Connection: close`), client pinned to CPU0 and servers to
CPU1, 10-second runs, the configurations alternated (ABAB…) and each figure the median of the
repetitions. Configurations:

- `none`: a pod pair wired like Weir's (veths, 169.254.1.1 gateway, /32 routes, forwarding
  node namespace), with no program at all;
- `iptables-10000`: the same pair with 10,000 non-matching rules in the node's FORWARD chain;
- `weir-10` / `weir-10000`: two pods of a real local cluster, the server selected by a
  NetworkPolicy that allows the client and 10 (or 10,000) ipBlock CIDRs — the whole pipeline
  (API → identities → compiled policy → maps) installs them.

With `kernel.bpf_stats_enabled` for one extra pass, the per-run cost of Weir's programs
(ns/run) is reported too (the machine's own setting is restored after).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.dev import DevCluster

WORKLOADS = ("udp", "tcp", "iperf", "wrk")
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{ listen {ip}:8080; location / {{ return 200 "ok\\n"; }} }}
}}
"""


def sh(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Pair:
    """A client and a server namespace and the server's address."""

    name: str
    client_netns: str
    server_netns: str
    server_ip: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run_client(self, *argv: str, timeout: float = 60) -> str:
        return sh(
            "ip", "netns", "exec", self.client_netns, "taskset", "-c", "0", *argv, timeout=timeout
        )

    def start_servers(self, workdir: Path) -> None:
        """sockperf (UDP 11111, TCP 11112), iperf3 (5201) and nginx (8080), all on CPU1."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(dir=workdir, ip=self.server_ip))
        commands = [
            ["sockperf", "sr", "-i", self.server_ip, "-p", "11111"],
            ["sockperf", "sr", "--tcp", "-i", self.server_ip, "-p", "11112"],
            ["iperf3", "-s", "-B", self.server_ip, "-p", "5201", "-A", "1"],
            ["nginx", "-c", str(workdir / "nginx.conf")],
        ]
        for cmd in commands:
            self.procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", self.server_netns, "taskset", "-c", "1", *cmd],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1.0)

    def stop_servers(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def _sockperf(pair: Pair, tcp: bool, seconds: int) -> dict[str, float]:
    out = pair.run_client(
        "sockperf",
        "ping-pong",
        "-i",
        pair.server_ip,
        "-p",
        "11112" if tcp else "11111",
        "-m",
        "64",
        "-t",
        str(seconds),
        *(["--tcp"] if tcp else []),
        timeout=seconds + 30,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)
    avg = float(re.search(r"avg-latency=([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"percentile 50\.000 =\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"percentile 99\.000 =\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"avg_us": avg, "p50_us": p50, "p99_us": p99}


def _iperf(pair: Pair, seconds: int) -> dict[str, float]:
    out = pair.run_client(
        "iperf3",
        "-c",
        pair.server_ip,
        "-p",
        "5201",
        "-P",
        "1",
        "-t",
        str(seconds),
        "-A",
        "0",
        "-J",
        timeout=seconds + 30,
    )
    bits = json.loads(out)["end"]["sum_received"]["bits_per_second"]
    return {"gbit_s": bits / 1e9}


def _wrk(pair: Pair, seconds: int) -> dict[str, float]:
    out = pair.run_client(
        "wrk",
        "-t1",
        "-c16",
        f"-d{seconds}s",
        "-H",
        "Connection: close",
        f"http://{pair.server_ip}:8080/",
        timeout=seconds + 30,
    )
    return {"conn_s": float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))}  # type: ignore[union-attr]


def run_workload(pair: Pair, workload: str, seconds: int) -> dict[str, float]:
    if workload in ("udp", "tcp"):
        return _sockperf(pair, workload == "tcp", seconds)
    if workload == "iperf":
        return _iperf(pair, seconds)
    return _wrk(pair, seconds)


# --- the bare pair (none, iptables) ---------------------------------------------------------------


@contextlib.contextmanager
def bare_pair(tag: str) -> Iterator[Pair]:
    """bp1 -> bnode -> bp2, wired as weir-cni wires pods, with no program anywhere."""
    names = {k: f"wb{tag}-{k}" for k in ("p1", "node", "p2")}
    ips = {"p1": "10.244.9.2", "p2": "10.244.9.3"}
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        for pod in ("p1", "p2"):
            host = f"h{pod}"
            sh(
                "ip",
                "-n",
                names["node"],
                "link",
                "add",
                host,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                names[pod],
            )
            sh("ip", "-n", names["node"], "addr", "add", "169.254.1.1/32", "dev", host)
            sh("ip", "-n", names["node"], "link", "set", host, "up")
            sh("ip", "-n", names["node"], "route", "add", f"{ips[pod]}/32", "dev", host)
            sh("ip", "-n", names[pod], "addr", "add", f"{ips[pod]}/32", "dev", "eth0")
            sh("ip", "-n", names[pod], "link", "set", "eth0", "up")
            sh(
                "ip",
                "-n",
                names[pod],
                "route",
                "add",
                "169.254.1.1/32",
                "dev",
                "eth0",
                "scope",
                "link",
            )
            sh("ip", "-n", names[pod], "route", "add", "default", "via", "169.254.1.1")
        sh("ip", "netns", "exec", names["node"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield Pair("bare", names["p1"], names["p2"], ips["p2"])
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def iptables_forward_rules(node_netns: str, count: int, server_ip: str) -> None:
    """`count` FORWARD rules that never match (as BENCH-BASELINE's B2), then the default."""
    lines = ["*filter", ":FORWARD ACCEPT [0:0]"]
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    lines += [
        f"-A FORWARD -s {ipaddress.IPv4Address(base + i)}/32 -d {server_ip}/32 -j DROP"
        for i in range(count)
    ]
    lines.append("COMMIT")
    subprocess.run(
        ["ip", "netns", "exec", node_netns, "iptables-restore"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )


# --- the Weir pairs -----------------------------------------------------------------------------


def weir_pairs(cluster: DevCluster, cidr_counts: tuple[int, ...]) -> dict[int, Pair]:
    """A client and one server per CIDR count, on node-1; each server's policy allows the
    client plus that many /32 ipBlocks from the benchmarking range 198.18.0.0/15."""
    cluster.kubectl("create", "namespace", "bench")
    pods = [_pod("client", "client")] + [_pod(f"server-{n}", "server") for n in cidr_counts]
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in pods))
    cluster.wait_pods_running(["bench"], len(pods), timeout=120)
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for n in cidr_counts:
        peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": {"role": "client"}}}]
        peers += [{"ipBlock": {"cidr": f"{ipaddress.IPv4Address(base + i)}/32"}} for i in range(n)]
        policy = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"server-{n}", "namespace": "bench"},
            "spec": {
                "podSelector": {"matchLabels": {"app": f"server-{n}"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": peers}],
            },
        }
        # create, not apply: apply's last-applied annotation would pass the 256 KiB limit
        cluster.kubectl("create", "-f", "-", input=json.dumps(policy), timeout=600)
    cluster.weir("status", "--wait-converged", "--timeout", "600", check=True, timeout=700)
    cid = cluster.cluster_id
    client = cluster.kubectl_json("get", "pod", "client", "-n", "bench")
    out = {}
    for n in cidr_counts:
        server = cluster.kubectl_json("get", "pod", f"server-{n}", "-n", "bench")
        out[n] = Pair(
            f"weir-{n}",
            f"{cid}-{client['metadata']['uid']}",
            f"{cid}-{server['metadata']['uid']}",
            server["status"]["podIP"],
        )
    return out


def _pod(name: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {"role": role, "app": name}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "image": "bench", "ports": [{"containerPort": 80}]}],
        },
    }


# --- measuring ------------------------------------------------------------------------------------


@contextlib.contextmanager
def bpf_stats() -> Iterator[Callable[[], dict[str, tuple[int, int]]]]:
    before = Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")

    def read() -> dict[str, tuple[int, int]]:
        progs = json.loads(sh("bpftool", "prog", "show", "-j"))
        return {
            f"{p['id']}:{p.get('name', '')}": (p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in progs
            if str(p.get("name", "")).startswith("weir_")
        }

    try:
        yield read
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text(before)


def ns_per_run(pair: Pair, workload: str, seconds: int) -> float:
    with bpf_stats() as read:
        first = read()
        run_workload(pair, workload, seconds)
        last = read()
    ns = sum(last[k][0] - first.get(k, (0, 0))[0] for k in last)
    runs = sum(last[k][1] - first.get(k, (0, 0))[1] for k in last)
    return round(ns / runs, 1) if runs else float("nan")


def median_table(samples: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for config, workloads in samples.items():
        row: dict[str, Any] = {}
        for workload, runs in workloads.items():
            for metric in runs[0]:
                values = [r[metric] for r in runs]
                row[f"{workload}_{metric}"] = {
                    "median": round(statistics.median(values), 2),
                    "min": round(min(values), 2),
                    "max": round(max(values), 2),
                }
        table[config] = row
    return table


def ratios(table: dict[str, Any], base: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for config, row in table.items():
        out[config] = {
            k: round(v["median"] / table[base][k]["median"], 3)
            for k, v in row.items()
            if table[base][k]["median"]
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rules", type=int, default=10_000)
    args = parser.parse_args(argv)
    tag = uuid.uuid4().hex[:5]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    stats: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="weir-bench-dp-") as tmp,
        bare_pair(tag) as bare,
        bare_pair(tag + "i") as ipt,
    ):
        work = Path(tmp)
        iptables_forward_rules(f"wb{tag}i-node", args.rules, ipt.server_ip)
        cluster = DevCluster(work / "dev", nodes=1)
        cluster.up()
        try:
            weir = weir_pairs(cluster, (10, args.rules))
            pairs = {
                "none": bare,
                f"iptables-{args.rules}": ipt,
                "weir-10": weir[10],
                f"weir-{args.rules}": weir[args.rules],
            }
            for name, pair in pairs.items():
                pair.start_servers(work / name)
            try:
                for _ in range(args.repetitions):  # ABAB: every config once per round
                    for name, pair in pairs.items():
                        for workload in WORKLOADS:
                            samples.setdefault(name, {}).setdefault(workload, []).append(
                                run_workload(pair, workload, args.seconds)
                            )
                for name in ("weir-10", f"weir-{args.rules}"):
                    stats[name] = {w: ns_per_run(pairs[name], w, args.seconds) for w in WORKLOADS}
            finally:
                for pair in pairs.values():
                    pair.stop_servers()
        finally:
            cluster.down()
    table = median_table(samples)
    result = {
        "benchmark": "datapath cost against rule count (method of BENCH-BASELINE.md)",
        "seconds": args.seconds,
        "repetitions": args.repetitions,
        "table": table,
        "ratio_to_none": ratios(table, "none"),
        "ratio_to_weir_10": ratios(table, "weir-10"),
        "weir_ns_per_run": stats,
        "targets": "weir at 10,000 rules within 5% of weir at 10, and within 10% of no program",
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
