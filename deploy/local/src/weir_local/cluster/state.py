"""What a local cluster leaves on disk, and how `weir dev down` removes all of it.

Everything lives under one state directory (`.weir/dev` by default): `cluster.json` (the
supervisor's pid, each component's pid, URLs, readiness), `kubeconfig`, `logs/`, NATS's store
and the API server's database. Teardown is a sweep that works from that file alone, so it also
cleans up after a supervisor that was killed outright.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from weir_local.cluster import network


@dataclass
class ComponentState:
    pid: int = 0
    argv0: str = ""
    log: str = ""
    probe: str = ""
    ready: bool = False
    restarts: int = 0


@dataclass
class ClusterState:
    supervisor_pid: int = 0
    ready: bool = False
    error: str = ""
    nats_url: str = ""
    api_url: str = ""
    kubeconfig: str = ""
    cluster_id: str = ""  # prefixes every network namespace of the cluster
    bpf_root: str = ""  # node-loaders pin under <bpf_root>/<node>/
    nodes: list[str] = field(default_factory=list)
    components: dict[str, ComponentState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw: dict[str, Any] = json.loads(text)
        comps = {k: ComponentState(**v) for k, v in raw.pop("components", {}).items()}
        return cls(**raw, components=comps)


class StateFile:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "cluster.json"

    def read(self) -> ClusterState | None:
        try:
            return ClusterState.from_json(self.path.read_text())
        except (OSError, ValueError, TypeError):
            return None

    def write(self, state: ClusterState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.path)


def pid_alive(pid: int, argv0: str = "") -> bool:
    """Whether `pid` runs, and (when given) runs `argv0` — a recycled pid is not ours."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False  # a zombie has exited; only its parent's wait is missing
    return not argv0 or any(argv0.encode() in part for part in cmdline[:3])


def stop_pid(pid: int, argv0: str = "", *, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds. True if the process had been running."""
    if not pid_alive(pid, argv0):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_alive(pid, argv0):
            time.sleep(0.05)
        if pid_alive(pid, argv0):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def sweep(state_dir: Path, *, grace: float = 10.0) -> list[str]:
    """Remove every trace of a local cluster; returns what was done (for the user)."""
    done: list[str] = []
    existed = state_dir.exists()
    state = StateFile(state_dir).read()
    if state is not None:
        # The supervisor sweeps on its own way out: it must not signal itself.
        own = state.supervisor_pid == os.getpid()
        if not own and stop_pid(state.supervisor_pid, "weir", grace=grace + 20):
            done.append(f"stopped supervisor (pid {state.supervisor_pid})")
        for name, comp in state.components.items():
            if stop_pid(comp.pid, comp.argv0, grace=grace):
                done.append(f"stopped {name} (pid {comp.pid})")
    if state is not None and state.cluster_id:
        done += [f"removed network namespace {n}" for n in network.destroy(state.cluster_id)]
    if state is not None and state.bpf_root and Path(state.bpf_root).exists():
        shutil.rmtree(state.bpf_root)  # pins; the programs using them died with their links
        done.append(f"removed BPF pins {state.bpf_root}")
    if state_dir.exists():  # (a supervisor that was signalled removes it on its way out)
        shutil.rmtree(state_dir)
    if existed:
        done.append(f"removed {state_dir}")
    return done
