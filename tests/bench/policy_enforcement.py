"""Benchmark: a NetworkPolicy change, from the API's acknowledgement to enforcement on a packet.

On a real local cluster, a prober opens a new TCP connection from x/b to x/a:80 every 5 ms
(each from inside x/b's network namespace, each a new flow that must meet the current policy).
A deny-all policy on x/a is created through the API and the clock runs from the API's answer
until the send time of the first probe that is blocked with every later one blocked too; then
the policy is deleted and the clock runs until the first probe that gets through. So the
figure is what a user sees: API change → kernel maps on the right node, through k8s-watcher,
identity-allocator, policy-compiler and node-loader. Two scenarios: the 9-pod e2e model, and
the same with 250 pods and 1,000 policies in place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from weir_local.probe import Target, probe

from tests.support import model
from tests.support.dev import DevCluster

INTERVAL = 0.005  # seconds between probes
PROBE_WITHIN = 0.05  # a blocked SYN is known after this long
DENY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "bench-deny", "namespace": "x"},
    "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]},
}


async def _until(
    netns: str, target: Target, reachable: bool, started: float, limit: float
) -> float:
    """Seconds from `started` to the send time of the first probe with the wanted result
    after which every probe has it (probes keep going until 10 in a row agree)."""
    results: list[tuple[float, bool]] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(sent: float) -> None:
        r = await probe(netns, target, 80, within=PROBE_WITHIN)
        results.append((sent, r.reachable))

    deadline = started + limit
    while time.monotonic() < deadline:
        sent = time.monotonic()
        task = asyncio.ensure_future(one(sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        done = sorted(results)
        if len(done) >= 10 and all(ok == reachable for _, ok in done[-10:]):
            break
        await asyncio.sleep(INTERVAL)
    await asyncio.gather(*pending)
    done = sorted(results)
    flip = next((i for i in range(len(done)) if all(ok == reachable for _, ok in done[i:])), None)
    if flip is None:
        raise TimeoutError(f"never {'reachable' if reachable else 'blocked'} in {limit}s")
    return done[flip][0] - started


async def _cycle(api: str, netns: str, target: Target) -> tuple[float, float]:
    async with aiohttp.ClientSession(api) as http:
        async with http.post(
            "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies", json=DENY
        ) as r:
            assert r.status == 201, await r.text()
            acked = time.monotonic()
        deny = await _until(netns, target, False, acked, 30)
        async with http.delete(
            "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies/bench-deny"
        ) as r:
            assert r.status == 200, await r.text()
            acked = time.monotonic()
        allow = await _until(netns, target, True, acked, 30)
    return deny, allow


def _load(cluster: DevCluster, pods: int, policies: int) -> None:
    """`pods` extra pods in 10 namespaces and `policies` policies selecting some of them."""
    spaces = [f"load{i}" for i in range(10)]
    docs: list[dict[str, Any]] = [model.namespace(ns) for ns in spaces]
    docs += [
        model.pod(spaces[i % 10], f"p{i}", app=f"a{i % 25}", tier=f"t{i % 5}") for i in range(pods)
    ]
    for i in range(policies):
        ns = spaces[i % 10]
        peer: dict[str, Any] = (
            {"podSelector": {"matchLabels": {"app": f"a{(i + 1) % 25}"}}}
            if i % 3 == 0
            else {"namespaceSelector": {"matchLabels": {"ns": spaces[(i + 3) % 10]}}}
            if i % 3 == 1
            else {"ipBlock": {"cidr": f"198.18.{i // 250}.{i % 250}/32"}}
        )
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"pol{i}", "namespace": ns},
                "spec": {
                    "podSelector": {"matchLabels": {"app": f"a{i % 25}"}},
                    "ingress": [{"from": [peer], "ports": [{"port": 80 + i % 3}]}],
                },
            }
        )
    cluster.kubectl(
        "apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs), timeout=900
    )
    cluster.wait_pods_running(spaces, pods, timeout=900)
    cluster.weir("status", "--wait-converged", "--timeout", "600", check=True, timeout=700)


def _summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 1),
        "max_ms": round(ms[-1], 1),
        "n": len(ms),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--pods", type=int, default=250)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "policy change -> enforced (API ack to packet)"}
    with tempfile.TemporaryDirectory(prefix="weir-bench-pol-") as tmp:
        cluster = DevCluster(Path(tmp) / "dev", nodes=args.nodes)
        cluster.up()
        try:
            cluster.kubectl("apply", "-f", "-", input=model.manifests())
            cluster.wait_pods_running(list(model.NAMESPACES), 9, timeout=120)
            source = cluster.kubectl_json("get", "pod", "b", "-n", "x")
            dest = cluster.kubectl_json("get", "pod", "a", "-n", "x")
            netns = f"{cluster.cluster_id}-{source['metadata']['uid']}"
            target = Target(dest["status"]["podIP"], frozenset({"a"}))
            api = str(cluster.info["api_url"])
            for scenario in ("model", "loaded"):
                if scenario == "loaded":
                    _load(cluster, args.pods, args.policies)
                denies, allows = [], []
                for _ in range(args.repetitions):
                    deny, allow = asyncio.run(_cycle(api, netns, target))
                    denies.append(deny)
                    allows.append(allow)
                result[scenario] = {
                    "deny_enforced": _summary(denies),
                    "allow_enforced": _summary(allows),
                }
            result["setup"] = {
                "nodes": args.nodes,
                "loaded_pods": args.pods,
                "loaded_policies": args.policies,
                "probe_interval_ms": INTERVAL * 1000,
            }
        finally:
            cluster.down()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
