"""`weir dev up` / `down`: the whole local cluster as a user runs it, and nothing left after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from weir_local.cluster import network
from weir_local.cluster.plan import BPF_ROOT, SERVICES
from weir_local.cluster.state import pid_alive

from tests.support.processes import KUBECTL, VENV_BIN, http_ok, require, wait_until

pytestmark = pytest.mark.integration
WEIR = str(VENV_BIN / "weir")
PORTS = ["--nats-port", "0", "--api-port", "0"]


def weir(state: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIR, *args],
        env={**os.environ, "WEIR_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cluster(state: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((state / "cluster.json").read_text())
    return data


def component_pids(state: Path) -> dict[str, int]:
    comps = cluster(state)["components"]
    assert isinstance(comps, dict)
    return {name: int(c["pid"]) for name, c in comps.items()}


def processes_mentioning(text: str) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmd:
                out.append(f"{proc.name}: {cmd}")
    return out


def assert_nothing_left(state: Path, pids: dict[str, int], cid: str) -> None:
    wait_until(
        lambda: not any(pid_alive(p) for p in pids.values()), 30, "cluster processes still running"
    )
    assert not state.exists()
    assert processes_mentioning(str(state)) == []
    assert network.namespaces_of(cid) == []
    assert not (BPF_ROOT / cid).exists()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    require(KUBECTL.exists(), "kubectl missing (run `make setup`)")
    path = tmp_path / "dev"
    try:
        yield path
    finally:
        weir(path, "dev", "down")


def test_detached_cluster_serves_kubectl_restarts_crashes_and_goes_away(state: Path) -> None:
    up = weir(state, "dev", "up", "--detach", *PORTS)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Weir local cluster is ready." in up.stdout
    assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout

    info = cluster(state)
    comps = info["components"]
    assert isinstance(comps, dict)
    assert set(comps) == {"nats", "apiserver", *SERVICES, "node-loader/node-1", "kubelet/node-1"}
    cid = str(cluster(state)["cluster_id"])
    assert network.namespaces_of(cid) == [f"{cid}-fabric", f"{cid}-node-1"]
    for name, comp in comps.items():
        if comp["probe"].startswith("http"):
            assert http_ok(comp["probe"]), name
    status = weir(state, "dev", "status")
    assert status.returncode == 0
    assert [line.split()[1] for line in status.stdout.splitlines()] == ["ready"] * len(comps)

    kubectl = [str(KUBECTL), "--kubeconfig", str(state / "kubeconfig")]
    subprocess.run([*kubectl, "create", "namespace", "demo"], check=True, capture_output=True)
    wait_until(
        lambda: "namespace.demo" in weir(state, "kv", "ls", "weir-k8s").stdout,
        30,
        "namespace.demo never reached weir-k8s",
    )

    again = weir(state, "dev", "up", "--detach", *PORTS)
    assert again.returncode == 1 and "already running" in again.stderr

    # A crashed service is restarted by the supervisor and is ready again.
    before = component_pids(state)["policy-compiler"]
    os.kill(before, signal.SIGKILL)
    wait_until(
        lambda: component_pids(state)["policy-compiler"] != before,
        30,
        "policy-compiler was not restarted",
    )
    wait_until(
        lambda: http_ok(comps["policy-compiler"]["probe"]),
        30,
        "restarted policy-compiler not ready",
    )

    pids = component_pids(state) | {"supervisor": int(cluster(state)["supervisor_pid"])}
    down = weir(state, "dev", "down")
    assert down.returncode == 0 and f"removed {state}" in down.stdout
    assert_nothing_left(state, pids, cid)


def test_foreground_cluster_stops_on_ctrl_c_and_leaves_nothing(state: Path) -> None:
    proc = subprocess.Popen(
        [WEIR, "dev", "up", *PORTS],
        env={**os.environ, "WEIR_STATE_DIR": str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Weir local cluster is ready." in line or not line:
            break
    assert any("is ready" in line for line in lines), "".join(lines)
    pids = component_pids(state) | {"supervisor": proc.pid}
    cid = str(cluster(state)["cluster_id"])
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Stopping the Weir local cluster" in out
    assert_nothing_left(state, pids, cid)


def test_idle_services_say_they_have_nothing_to_do_yet(state: Path) -> None:
    up = weir(state, "dev", "up", "--detach", *PORTS)
    assert up.returncode == 0, up.stderr
    comps = cluster(state)["components"]
    assert isinstance(comps, dict)
    import urllib.request

    for name in ("lb-programmer", "bandwidth-manager"):
        with urllib.request.urlopen(comps[name]["probe"], timeout=5) as r:
            body = r.read().decode()
        assert "[+]nats: connected" in body and "nothing to do yet" in body, (name, body)
        log = Path(comps[name]["log"]).read_text()
        assert "nothing to do yet" in log, name
