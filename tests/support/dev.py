"""A real local cluster for tests: `weir dev up --detach` in a private state dir, `down` after."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.processes import KUBECTL, VENV_BIN, require


class DevCluster:
    def __init__(self, state_dir: Path, nodes: int = 1) -> None:
        self.state_dir = state_dir
        self.nodes = nodes
        self.env = {**os.environ, "WEIR_STATE_DIR": str(state_dir)}

    # --- lifecycle ------------------------------------------------------------------------------

    def up(self, timeout: float = 180) -> None:
        require(os.geteuid() == 0, "needs root (nodes and pods are network namespaces)")
        require(KUBECTL.exists(), "kubectl missing (run `make setup`)")
        result = self.weir(
            "dev",
            "up",
            "--detach",
            "--nodes",
            str(self.nodes),
            "--nats-port",
            "0",
            "--api-port",
            "0",
            timeout=timeout,
        )
        if result.returncode != 0:
            logs = self.state_dir / "logs"
            tails = ""
            if logs.is_dir():
                for log in sorted(logs.iterdir()):
                    tails += f"\n--- {log.name}\n" + "\n".join(
                        log.read_text(errors="replace").splitlines()[-15:]
                    )
            raise AssertionError(f"weir dev up failed:\n{result.stdout}{result.stderr}{tails}")

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.weir("dev", "down", timeout=120)

    # --- tools ----------------------------------------------------------------------------------

    def weir(
        self, *args: str, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "weir"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"weir {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.state_dir / "kubeconfig"), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    @property
    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "cluster.json").read_text())
        return data

    @property
    def cluster_id(self) -> str:
        return str(self.info["cluster_id"])

    def node_netns(self, node: str) -> str:
        return f"{self.cluster_id}-{node}"

    def wait_pods_running(self, namespaces: list[str], count: int, timeout: float) -> float:
        """Seconds until `count` pods in `namespaces` are Running with an IP and Ready."""
        started = time.monotonic()
        while True:
            pods = [
                p for ns in namespaces for p in self.kubectl_json("get", "pods", "-n", ns)["items"]
            ]
            running = [
                p
                for p in pods
                if p.get("status", {}).get("phase") == "Running"
                and p["status"].get("podIP")
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", [])
                )
            ]
            if len(running) >= count:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                states = {
                    f"{p['metadata']['namespace']}/{p['metadata']['name']}": p.get(
                        "status", {}
                    ).get("phase")
                    for p in pods
                }
                raise AssertionError(
                    f"{len(running)}/{count} pods running after {timeout}s: {states}"
                )
            time.sleep(0.5)
