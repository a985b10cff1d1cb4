"""Real processes for tests and benchmarks: nats-server, the local API server, Weir services.

Each runs from the venv on loopback with its state in a temp dir, is started only once it
answers, and is stopped (SIGTERM, then SIGKILL) on the way out. Prerequisites that are
missing skip a test locally and fail it in CI (CI=true), so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from weir_local.cluster.supervisor import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KUBECTL = ROOT / ".weir" / "bin" / "kubectl"
HELM = ROOT / ".weir" / "bin" / "helm"
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing — except in CI, where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} after {timeout}s")


async def eventually(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll an async check until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached after {timeout}s (last: {str(last)[:300]})")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A killed test run leaves no process behind. (The hook only calls prctl,
                # which is safe between fork and exec even with threads running.)
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, check: object, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.proc is not None and self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 10) -> None:
        if self.proc is None:
            return
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


class NatsServer(Process):
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        super().__init__(
            "nats-server",
            [
                str(VENV_BIN / "nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(workdir / "nats"),
            ],
            workdir / "nats.log",
        )

    def start(self) -> None:
        require((VENV_BIN / "nats-server").exists(), "nats-server missing (run `make setup`)")
        super().start()
        self.wait_ready(lambda: port_open(self.port))


class ApiServer(Process):
    """The local Kubernetes API server, with a kubeconfig for kubectl and clients."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = workdir / "apiserver"
        self.kubeconfig = workdir / "kubeconfig"
        super().__init__(
            "apiserver",
            [
                str(VENV_BIN / "weir-local-apiserver"),
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                *extra,
            ],
            workdir / "apiserver.log",
        )

    def start(self) -> None:
        from weir_local.cluster.plan import kubeconfig_yaml

        self.kubeconfig.write_text(kubeconfig_yaml(self.url))
        super().start()
        self.wait_ready(lambda: http_ok(f"{self.url}/readyz"))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        require(KUBECTL.exists(), "kubectl missing (run `make setup`)")
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            check=False,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result


class Service(Process):
    """A Weir service (console script weir-<name>) with its health port."""

    def __init__(
        self, name: str, workdir: Path, nats: NatsServer, env: dict[str, str] | None = None
    ) -> None:
        self.health_port = free_port()
        super().__init__(
            name,
            [str(VENV_BIN / f"weir-{name}")],
            workdir / f"{name}.log",
            env={
                "WEIR_NATS_URL": nats.url,
                "WEIR_HEALTH_PORT": str(self.health_port),
                "WEIR_LOG_FORMAT": "text",
                **(env or {}),
            },
        )

    @property
    def readyz(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/readyz"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`, from /metrics."""
        pattern = re.compile(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$")
        total = 0.0
        for line in self.metrics().splitlines():
            m = pattern.match(line)
            if m and all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def start_ready(self, timeout: float = 60) -> None:
        self.start()
        self.wait_ready(lambda: http_ok(self.readyz), timeout)
