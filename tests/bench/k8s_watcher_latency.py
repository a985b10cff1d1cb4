"""Benchmark: API change -> KV write latency through k8s-watcher, at a fixed change rate.

Real processes (nats-server, the local API server, the watcher) on this machine. An open-loop
generator issues changes at `rate` per second regardless of how fast they complete (so a slow
system cannot hide its queueing), cycling pods through create -> updates -> delete. A KV
watcher in the same process notes when each change appears in weir-k8s. Latency is measured
from the moment the API server acknowledged the change (it is committed then) to the moment
the KV entry was delivered; the figure from the request's scheduled send time is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from weir import catalog
from weir.bus import CaughtUp, KvBucket
from weir.codec import Codec

from tests.support.processes import ApiServer, NatsServer, Process, Service

SEQ_LABEL = "bench.weir.io/seq"


@dataclass
class Change:
    key: str
    seq: int  # -1 for a delete
    scheduled: float
    acked: float = 0.0
    seen: float = 0.0


@dataclass
class Run:
    changes: list[Change] = field(default_factory=list)
    by_key_seq: dict[tuple[str, int], Change] = field(default_factory=dict)
    # A pod is deleted once per cycle: deletes of one key are matched in the order issued.
    deletes: dict[str, list[Change]] = field(default_factory=dict)
    errors: int = 0
    achieved_rate: float = 0.0


def _pod(name: str, seq: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {SEQ_LABEL: str(seq)}},
        "spec": {
            "containers": [{"name": "c", "image": "weir/agnhost", "ports": [{"containerPort": 80}]}]
        },
    }


async def _issue(
    http: aiohttp.ClientSession, run: Run, op: str, name: str, seq: int, scheduled: float
) -> None:
    change = Change(f"pod.bench.{name}", -1 if op == "delete" else seq, scheduled)
    if op == "delete":
        run.deletes.setdefault(change.key, []).append(change)
    else:
        run.by_key_seq[(change.key, change.seq)] = change
    base = "/api/v1/namespaces/bench/pods"
    if op == "create":
        req = http.post(base, json=_pod(name, seq))
    elif op == "update":
        req = http.patch(
            f"{base}/{name}",
            json={"metadata": {"labels": {SEQ_LABEL: str(seq)}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    else:
        req = http.delete(f"{base}/{name}", json={"gracePeriodSeconds": 0})
    async with req as r:
        await r.read()
        change.acked = time.monotonic()
        if r.status >= 300:
            run.errors += 1
            return
    run.changes.append(change)


async def _observe(nats_url: str, out: Any, ready: Any, stop: Any) -> None:
    """Note when each change reaches weir-k8s; runs in its own process so the load generator
    cannot delay its timestamps (CLOCK_MONOTONIC is shared by every process on the host)."""
    codec = Codec(catalog.K8S_SCHEMA)
    nc = await nats.connect(nats_url)
    watch = KvBucket(nc.jetstream(), catalog.K8S.name).watch("pod.bench.>")
    seen: list[tuple[str, int, float]] = []

    async def consume() -> None:
        async for item in watch:
            if isinstance(item, CaughtUp):
                ready.set()
                continue
            now = time.monotonic()
            seq = -1
            if item.value is not None:
                seq = int(codec.decode(item.value).meta.labels.get(SEQ_LABEL, "-2"))
            seen.append((item.key, seq, now))

    # Cancelling a task (not the generator's anext) keeps the watch intact until the end.
    consumer = asyncio.ensure_future(consume())
    try:
        while not stop.is_set():
            await asyncio.sleep(0.1)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    finally:
        out.send(seen)
        await watch.aclose()
        await nc.close()


def _observer_process(nats_url: str, out: Any, ready: Any, stop: Any) -> None:
    asyncio.run(_observe(nats_url, out, ready, stop))


async def _drive(
    api_url: str, nats_url: str, rate: float, seconds: float, pods: int, updates_per_pod: int
) -> Run:
    run = Run()
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    ready, stop = ctx.Event(), ctx.Event()
    observer = ctx.Process(target=_observer_process, args=(nats_url, sender, ready, stop))
    observer.start()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(api_url, connector=connector) as http:
        async with http.post(
            "/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        ) as r:
            assert r.status == 201, await r.text()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 30)
        phase = [0] * pods  # 0: absent; 1..updates: updates done; then delete
        total = int(rate * seconds)
        tasks = []
        start = time.monotonic()
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            n = i % pods
            name = f"p{n}"
            if phase[n] == 0:
                op = "create"
            elif phase[n] > updates_per_pod:
                op = "delete"
            else:
                op = "update"
            phase[n] = 0 if op == "delete" else phase[n] + 1
            tasks.append(asyncio.ensure_future(_issue(http, run, op, name, i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    await asyncio.sleep(3)  # let the last changes arrive
    stop.set()
    seen = await asyncio.get_running_loop().run_in_executor(None, receiver.recv)
    observer.join(10)
    for key, seq, at in seen:
        if seq == -1:
            pending = [c for c in run.deletes.get(key, ()) if not c.seen]
            change = pending[0] if pending else None
        else:
            change = run.by_key_seq.get((key, seq))
        if change is not None and not change.seen:
            change.seen = at
    run.achieved_rate = len(run.changes) / elapsed
    return run


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _cpu_seconds(proc: Process) -> float:
    assert proc.proc is not None
    fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def _rss_mib(proc: Process) -> float:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _histogram_quantiles(text: str, name: str) -> dict[str, float]:
    """Cumulative share of observations at or under each bucket bound (ms), summed over kinds."""
    counts: dict[float, float] = {}
    for m in re.finditer(rf'^{name}_bucket{{.*le="([^"]+)".*}} (\S+)$', text, re.M):
        if m.group(1) != "+Inf":
            le = float(m.group(1)) * 1000
            counts[le] = counts.get(le, 0) + float(m.group(2))
    total = sum(float(v) for v in re.findall(rf"^{name}_count{{.*}} (\S+)$", text, re.M))
    return {f"<={le:g}": round(c / total, 4) for le, c in sorted(counts.items())} if total else {}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--updates-per-pod", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weir-bench-") as tmp:
        work = Path(tmp)
        nats_server = NatsServer(work)
        api = ApiServer(work)
        nats_server.start()
        api.start()
        watcher = Service(
            "k8s-watcher",
            work,
            nats_server,
            env={"WEIR_KUBECONFIG": str(api.kubeconfig), "WEIR_LOG_LEVEL": "warning"},
        )
        try:
            watcher.start_ready()
            cpu0 = {p.name: _cpu_seconds(p) for p in (api, watcher, nats_server)}
            t0 = time.monotonic()
            run = asyncio.run(
                _drive(
                    api.url,
                    nats_server.url,
                    args.rate,
                    args.seconds,
                    args.pods,
                    args.updates_per_pod,
                )
            )
            wall = time.monotonic() - t0
            cpu = {
                p.name: (_cpu_seconds(p) - cpu0[p.name]) / wall for p in (api, watcher, nats_server)
            }
            rss = {p.name: _rss_mib(p) for p in (api, watcher, nats_server)}
            watcher_ack = _histogram_quantiles(
                watcher.metrics(), "weir_k8s_watcher_change_to_ack_seconds"
            )
        finally:
            watcher.stop()
            api.stop()
            nats_server.stop()
    seen = [c for c in run.changes if c.seen]
    from_ack = [(c.seen - c.acked) * 1000 for c in seen]
    from_sched = [(c.seen - c.scheduled) * 1000 for c in seen]
    api_latency = [(c.acked - c.scheduled) * 1000 for c in run.changes]
    result = {
        "benchmark": "k8s-watcher API change -> KV write latency",
        "target_rate_per_s": args.rate,
        "achieved_rate_per_s": round(run.achieved_rate, 1),
        "changes": len(run.changes),
        "api_errors": run.errors,
        "never_seen_in_kv": len(run.changes) - len(seen),
        "commit_to_kv_ms": {
            "p50": round(_pct(from_ack, 50), 2),
            "p90": round(_pct(from_ack, 90), 2),
            "p99": round(_pct(from_ack, 99), 2),
            "max": round(max(from_ack, default=0), 2),
            "mean": round(statistics.fmean(from_ack), 2) if from_ack else None,
        },
        "scheduled_send_to_kv_ms": {
            "p50": round(_pct(from_sched, 50), 2),
            "p99": round(_pct(from_sched, 99), 2),
        },
        "api_request_ms": {
            "p50": round(_pct(api_latency, 50), 2),
            "p99": round(_pct(api_latency, 99), 2),
        },
        "watcher_receive_to_ack_ms_buckets": watcher_ack,
        "cpu_cores": {k: round(v, 2) for k, v in cpu.items()},
        "rss_mib": {k: round(v, 1) for k, v in rss.items()},
        "target": "p99 commit_to_kv under 50 ms",
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
