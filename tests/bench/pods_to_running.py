"""Benchmark: pods to Running on one local node — pods per second, and what it costs.

A real `weir dev up` cluster (one node): 250 pods are applied with kubectl at once and the
clock runs until every one is Running, Ready and has an IP. Reported with the time to the
first and the median pod, the local kubelet's and node-loader's memory once all run, and the
CNI ADD latency the kubelet observed (from its metrics, when it exports them).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import model
from tests.support.dev import DevCluster


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _running_since(
    cluster: DevCluster, namespace: str, count: int, timeout: float, started: float
) -> list[float]:
    """Per pod: seconds from `started` until it was first seen Running and Ready."""
    seen: dict[str, float] = {}
    while len(seen) < count:
        if time.monotonic() - started > timeout:
            break
        for p in cluster.kubectl_json("get", "pods", "-n", namespace)["items"]:
            name = p["metadata"]["name"]
            status = p.get("status", {})
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
            )
            if (
                name not in seen
                and status.get("phase") == "Running"
                and ready
                and status.get("podIP")
            ):
                seen[name] = time.monotonic() - started
        time.sleep(0.25)
    return sorted(seen.values())


def _histogram(url: str, name: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    buckets = [
        (float(le), float(v))
        for le, v in re.findall(rf'^{name}_bucket{{.*le="([0-9.e+-]+)".*}} (\S+)$', text, re.M)
    ]
    total = sum(float(v) for v in re.findall(rf"^{name}_count(?:{{.*}})? (\S+)$", text, re.M))
    if not total:
        return {}
    out = {}
    for q in (0.5, 0.99):
        le = next((le for le, c in sorted(buckets) if c >= q * total), float("inf"))
        out[f"p{int(q * 100)}_le_ms"] = le * 1000
    out["count"] = total
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weir-bench-pods-") as tmp:
        cluster = DevCluster(Path(tmp) / "dev", nodes=1)
        cluster.up()
        try:
            cluster.kubectl("create", "namespace", "load")
            stream = "\n---\n".join(
                json.dumps(model.pod("load", f"p{i}")) for i in range(args.pods)
            )
            started = time.monotonic()
            cluster.kubectl("apply", "-f", "-", input=stream, timeout=args.timeout)
            applied = time.monotonic() - started
            times = _running_since(cluster, "load", args.pods, args.timeout, started)
            comps = cluster.info["components"]
            kubelet, loader = comps["kubelet/node-1"], comps["node-loader/node-1"]
            metrics_url = kubelet["probe"].replace("/readyz", "/metrics")
            result = {
                "benchmark": f"{args.pods} pods to Running on one local node",
                "pods_running": len(times),
                "kubectl_apply_s": round(applied, 2),
                "all_running_s": round(times[-1], 2) if times else None,
                "first_running_s": round(times[0], 2) if times else None,
                "median_running_s": round(statistics.median(times), 2) if times else None,
                "pods_per_second": round(len(times) / times[-1], 1) if times else 0.0,
                "kubelet_rss_mib": _rss_mib(int(kubelet["pid"])),
                "node_loader_rss_mib": _rss_mib(int(loader["pid"])),
                "cni_add_seconds": _histogram(metrics_url, "weir_kubelet_cni_seconds"),
            }
        finally:
            cluster.down()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
