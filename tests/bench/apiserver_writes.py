"""Local API server under a steady write load with one watcher attached.

Starts `weir-local-apiserver` (temp state dir, SQLite on), creates PODS pods, then patches
them at RATE writes/s from CONCURRENCY connections for SECONDS while one watch (with
bookmarks) streams every change. Reports the rate achieved, the request latency and the
write → watch-event latency (the event is matched to its write by resourceVersion).

    .venv/bin/python -m tests.bench.apiserver_writes [--rate 1000] [--seconds 10]
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

from tests.support.processes import ApiServer


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def run(
    rate: float, seconds: float, pods: int, concurrency: int, url: str
) -> dict[str, float]:
    ns = f"{url}/api/v1/namespaces/bench/pods"
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 4)) as s:
        await s.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": "bench"}})
        for i in range(pods):
            body = {
                "metadata": {"name": f"p{i}"},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }
            async with s.post(ns, json=body) as r:
                assert r.status == 201, await r.text()
        async with s.get(f"{url}/api/v1/pods?limit=1") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        async def watch() -> None:
            q = f"?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={int(seconds) + 30}"  # noqa: E501
            async with s.get(f"{url}/api/v1/pods{q}") as r:
                async for line in r.content:
                    ev = json.loads(line)
                    if ev["type"] != "BOOKMARK":
                        seen[int(ev["object"]["metadata"]["resourceVersion"])] = time.perf_counter()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.3)
        interval = concurrency / rate
        start = time.perf_counter()
        deadline = start + seconds

        async def writer(k: int) -> None:
            n = k
            next_at = start + k * interval / concurrency
            while True:
                now = time.perf_counter()
                if now >= deadline:
                    return
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += interval
                patch = json.dumps({"metadata": {"labels": {"n": str(n)}}}).encode()
                t0 = time.perf_counter()
                async with s.patch(
                    f"{ns}/p{n % pods}",
                    data=patch,
                    headers={"Content-Type": "application/merge-patch+json"},
                ) as r:
                    body = await r.json()
                t1 = time.perf_counter()
                assert r.status == 200, body
                latencies.append(t1 - t0)
                sent[int(body["metadata"]["resourceVersion"])] = t1
                n += concurrency

        await asyncio.gather(*(writer(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        await asyncio.sleep(1.0)
        watcher.cancel()
    delivery = [seen[v] - t for v, t in sent.items() if v in seen]
    return {
        "writes": len(latencies),
        "writes_per_s": len(latencies) / elapsed,
        "request_p50_ms": statistics.median(latencies) * 1000,
        "request_p99_ms": pct(latencies, 0.99) * 1000,
        "watch_delivered": len(delivery),
        # Negative values: the event arrived before the HTTP response was read.
        "write_to_event_p50_ms": statistics.median(delivery) * 1000 if delivery else float("nan"),
        "write_to_event_p99_ms": pct(delivery, 0.99) * 1000,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = ApiServer(Path(tmp))
        server.start()
        try:
            result = asyncio.run(
                run(args.rate, args.seconds, args.pods, args.concurrency, server.url)
            )
        finally:
            server.stop()
    for k, v in result.items():
        print(f"{k:>24}: {v:.2f}" if isinstance(v, float) else f"{k:>24}: {v}")
    return result


if __name__ == "__main__":
    main()
