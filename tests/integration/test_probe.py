"""weir_local.probe against real answerers in a network namespace this test makes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from weir.netns import entered, path_of
from weir_local.probe import Target, probe

from tests.support.processes import require

pytestmark = pytest.mark.integration


@pytest.fixture
def netns() -> Iterator[str]:
    require(os.geteuid() == 0, "needs root (network namespaces)")
    name = f"wtest-probe-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Answerer(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name, addr)


@pytest.fixture
async def servers(netns: str) -> AsyncIterator[str]:
    """In `netns`: port 80 answers HTTP with "web", 81 answers with a 500, UDP 80 with "web"."""
    import socket

    async def http(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: str, body: bytes
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    with entered(path_of(netns)):
        tcp80, tcp81 = socket.socket(), socket.socket()
        udp80 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s, port in ((tcp80, 80), (tcp81, 81), (udp80, 80)):
            s.bind(("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    good = await asyncio.start_server(lambda r, w: http(r, w, "200 OK", b"web\n"), sock=tcp80)
    bad = await asyncio.start_server(lambda r, w: http(r, w, "500 Oops", b"web"), sock=tcp81)
    udp, _ = await loop.create_datagram_endpoint(lambda: Answerer(b"web"), sock=udp80)
    try:
        yield netns
    finally:
        good.close()
        bad.close()
        udp.close()


async def test_tcp_and_udp_answers_are_checked_against_the_expected_name(servers: str) -> None:
    web = Target("127.0.0.1", frozenset({"web"}))
    assert (await probe(servers, web, 80)).reachable
    assert (await probe(servers, web, 80, protocol="udp")).reachable
    anyone = await probe(servers, Target("127.0.0.1"), 80)
    assert anyone.reachable and anyone.answer == "web"
    wrong = await probe(servers, Target("127.0.0.1", frozenset({"db"})), 80)
    assert not wrong.reachable and "expected" in wrong.error


async def test_errors_refusals_and_silence_are_unreachable(servers: str) -> None:
    web = Target("127.0.0.1", frozenset({"web"}))
    assert not (await probe(servers, web, 81)).reachable  # HTTP 500
    refused = await probe(servers, web, 82)
    assert not refused.reachable and "refused" in refused.error.lower()
    silent = await probe(servers, web, 82, protocol="udp", within=0.5)
    assert not silent.reachable and "no answer" in silent.error
    assert 0.45 < silent.seconds < 2


async def test_a_probe_runs_in_the_source_namespace_not_the_caller(servers: str) -> None:
    # The answerers listen only on the namespace's loopback: from the test's own namespace
    # 127.0.0.1:80 (if anything) is something else, never "web".
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", 80)) == 0:
            pytest.skip("something listens on the host's 127.0.0.1:80")
    assert (await probe(servers, Target("127.0.0.1", frozenset({"web"})), 80)).reachable
