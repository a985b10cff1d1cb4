"""`make bench`: run every benchmark, print its figures, keep them under .weir/bench/.

Benchmarks measure; they never assert. Targets are stated in each result for the reader.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.bench import (
    apiserver_writes,
    cni_add,
    datapath_cost,
    k8s_watcher_latency,
    pods_to_running,
    policy_enforcement,
)

BENCHMARKS = {
    "apiserver_writes": apiserver_writes.main,
    "cni_add": cni_add.main,
    "datapath_cost": datapath_cost.main,
    "k8s_watcher_latency": k8s_watcher_latency.main,
    "pods_to_running": pods_to_running.main,
    "policy_enforcement": policy_enforcement.main,
}
OUT = Path(__file__).resolve().parents[2] / ".weir" / "bench"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    for name, bench in BENCHMARKS.items():
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        result = bench([])
        result["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
