"""Fixtures shared by every test: real binaries from the venv, on loopback, in temp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ApiServer, NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    """The local Kubernetes API server, with a kubeconfig at `api.kubeconfig`."""
    server = ApiServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
