"""Benchmark: weir-cni ADD (and DEL) latency and throughput, as a runtime sees them.

The real `weir-cni` executable runs in a private node network namespace (`wtest-cni-bench-…`)
against the node-loader test double (`tests/support/cni_harness.py`), so the figures are the
plugin's own: interpreter start, IPAM, two `ip -batch` runs, the registration round trip.
node-loader's own datapath work is not in them.

1. `--pods` ADDs one after another (latency p50/p99), then DELs one after another.
2. `--burst` pods ADDed `--concurrency` at a time (pods/s, latency under load), then DELed.

Also reported: VERSION (interpreter start and imports: the floor under every command) and
the `nsenter` hop the harness adds to each run. Needs root; otherwise it reports why not.

    .venv/bin/python -m tests.bench.cni_add [--pods 100] [--burst 250] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from weir.cni_config import PluginConfig

from tests.support.cni_harness import Netns, NodeLoaderDouble, Outcome, Runtime, unique


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)

    return {
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    outcome = call()
    return (time.perf_counter() - started) * 1000, outcome


def _run_all(
    calls: list[Callable[[], Outcome]], concurrency: int
) -> tuple[list[float], int, float]:
    """(latencies ms, failures, wall seconds) for running `calls` `concurrency` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(_timed, calls))
    wall = time.perf_counter() - started
    return [ms for ms, _ in done], sum(1 for _, o in done if o.returncode != 0), wall


def _bench(work: Path, pods: int, burst: int, concurrency: int) -> dict[str, Any]:
    double = NodeLoaderDouble(work / "node-loader.sock")
    node = Netns(unique("wtest-cni-bench-node"))
    pod_ns = [Netns(unique("wtest-cni-bench-pod")) for _ in range(max(pods, burst))]
    made: list[Netns] = []
    try:
        node.create()
        made.append(node)
        node.sysctl("net.ipv4.ip_forward", "1")
        for ns in pod_ns:
            made.append(ns)
            ns.create()
        double.start()
        runtime = Runtime(
            node,
            PluginConfig(
                node_loader_socket=str(double.socket_path),
                subnet="10.252.0.0/22",
                ipam_data_dir=str(work / "ipam"),
            ),
        )
        floor = [_timed(lambda: runtime.invoke(runtime.env("VERSION"), ""))[0] for _ in range(20)]
        hop = [_timed(lambda: node.run("true"))[0] for _ in range(20)]

        def add(i: int) -> Callable[[], Outcome]:
            return lambda: runtime.add(f"bench-{i}", pod_ns[i])

        def delete(i: int) -> Callable[[], Outcome]:
            return lambda: runtime.delete(f"bench-{i}", pod_ns[i])

        seq_add, seq_add_failed, _ = _run_all([add(i) for i in range(pods)], 1)
        seq_del, seq_del_failed, _ = _run_all([delete(i) for i in range(pods)], 1)
        burst_add, burst_add_failed, add_wall = _run_all(
            [add(i) for i in range(burst)], concurrency
        )
        burst_del, burst_del_failed, del_wall = _run_all(
            [delete(i) for i in range(burst)], concurrency
        )
    finally:
        double.stop()
        for ns in reversed(made):
            ns.delete()
    return {
        "benchmark": "weir-cni ADD/DEL latency and throughput (node-loader test double)",
        "cpus": os.cpu_count(),
        "sequential": {
            "pods": pods,
            "add_ms": _ms(seq_add),
            "del_ms": _ms(seq_del),
            "failures": seq_add_failed + seq_del_failed,
        },
        "burst": {
            "pods": burst,
            "concurrency": concurrency,
            "add_pods_per_s": round(burst / add_wall, 1) if add_wall else None,
            "add_ms": _ms(burst_add),
            "del_pods_per_s": round(burst / del_wall, 1) if del_wall else None,
            "del_ms": _ms(burst_del),
            "failures": burst_add_failed + burst_del_failed,
        },
        "version_ms": _ms(floor),
        "nsenter_hop_ms": _ms(hop),
        "target": "sequential ADD p99 under 100 ms; the interpreter start is most of it",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100, help="sequential ADDs")
    parser.add_argument("--burst", type=int, default=250, help="ADDs in the concurrent run")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        result: dict[str, Any] = {"benchmark": "weir-cni ADD", "skipped": "needs root"}
    else:
        with tempfile.TemporaryDirectory(prefix="weir-bench-cni-") as tmp:
            result = _bench(Path(tmp), args.pods, args.burst, args.concurrency)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
