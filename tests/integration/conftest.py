"""Fixtures for integration tests against the local API server with the real kubectl.

`kube` starts `weir-local-apiserver` as a subprocess (temp state dir, free loopback port),
writes a kubeconfig for it and runs kubectl 1.35 from .weir/bin with its own cache dir. One
server per test module (starting one takes about a second); tests isolate themselves with
their own namespaces (`namespace` fixture).
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import KUBECTL, ApiServer, require


class Kube:
    """One running API server and a kubectl bound to it."""

    def __init__(self, server: ApiServer, cache_dir: Path) -> None:
        self.server = server
        self.url = server.url
        self.kubeconfig = server.kubeconfig
        self.cache_dir = cache_dir

    def argv(self, *args: str) -> list[str]:
        return [
            str(KUBECTL),
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]

    def run(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with any exit status (for tests of failures)."""
        return subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        """kubectl that must succeed; returns stdout."""
        result = self.run(*args, input=input, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    require(KUBECTL.exists(), f"kubectl missing at {KUBECTL} (run `make setup`)")
    workdir = tmp_path_factory.mktemp("kube")
    server = ApiServer(workdir, "--bookmark-interval", "1")
    server.start()
    try:
        yield Kube(server, workdir / "kube-cache")
    finally:
        server.stop()


_NAMES = itertools.count()


@pytest.fixture
def namespace(kube: Kube) -> str:
    """A fresh namespace for one test."""
    name = f"t{next(_NAMES)}"
    kube("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
    return name
