"""The pod "containers": HTTP and raw TCP answers, and UDP replies (fake transports; the
sockets in real namespaces are exercised by the integration tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from weir_local.kubelet.servers import (
    PodServer,
    _TcpResponder,
    _UdpResponder,
    http_response,
    parse_head,
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = b""
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.out += bytes(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def connect() -> tuple[PodServer, _TcpResponder, FakeTransport]:
    server = PodServer("web-0", None, [80])
    proto = _TcpResponder(server)
    t = FakeTransport()
    proto.connection_made(t)
    return server, proto, t


async def test_http_get_gets_200_with_the_name_then_close() -> None:
    server, proto, t = connect()
    assert server.connections == {t}
    proto.data_received(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    assert t.out == http_response(b"web-0", head=False, keep_alive=False)
    assert t.out.startswith(b"HTTP/1.1 200 OK\r\n") and t.out.endswith(b"\r\n\r\nweb-0")
    assert b"Content-Length: 5\r\n" in t.out
    assert t.closed
    proto.connection_lost(None)
    assert server.connections == set()


async def test_http11_keep_alive_pipelining_and_split_reads() -> None:
    _, proto, t = connect()
    proto.data_received(b"GE")  # undecided: wait
    assert t.out == b""
    proto.data_received(b"T /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n")
    keep = http_response(b"web-0", head=False, keep_alive=True)
    head = http_response(b"web-0", head=True, keep_alive=True)
    assert t.out == keep + head and not t.closed
    t.out = b""
    # A POST body arriving in pieces is consumed before the next request is read.
    proto.data_received(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
    assert t.out == b""
    proto.data_received(b"cdGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert t.out == keep + http_response(b"web-0", head=False, keep_alive=False)
    assert t.closed


async def test_any_other_tcp_payload_gets_the_name_then_close() -> None:
    _, proto, t = connect()
    proto.data_received(b"hello\n")
    assert t.out == b"web-0" and t.closed


async def test_chunked_request_is_answered_and_closed() -> None:
    _, proto, t = connect()
    proto.data_received(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello")
    assert t.out == http_response(b"web-0", head=False, keep_alive=False) and t.closed


def test_parse_head() -> None:
    assert parse_head(b"GET / HTTP/1.1\r\nHost: a") == (b"GET", True, 0)
    assert parse_head(b"GET / HTTP/1.1\r\nConnection: Close") == (b"GET", False, 0)
    assert parse_head(b"GET / HTTP/1.0") == (b"GET", False, 0)
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive") == (b"GET", True, 0)
    assert parse_head(b"PUT / HTTP/1.1\r\ncontent-length: 12") == (b"PUT", True, 12)
    assert parse_head(b"PUT / HTTP/1.1\r\nContent-Length: x") == (b"PUT", True, None)


class FakeDatagram:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


def test_udp_answers_every_datagram_with_the_name() -> None:
    proto = _UdpResponder(PodServer("web-0", None, [53]))
    t = FakeDatagram()
    proto.connection_made(t)  # type: ignore[arg-type]
    proto.datagram_received(b"ping", ("10.0.0.1", 4000))
    proto.datagram_received(b"", ("10.0.0.2", 4001))
    assert t.sent == [(b"web-0", ("10.0.0.1", 4000)), (b"web-0", ("10.0.0.2", 4001))]


def test_ports_are_deduplicated_and_sorted() -> None:
    assert PodServer("p", None, [8080, 80, 8080]).ports == (80, 8080)


@pytest.mark.parametrize("payload", [b"\x16\x03\x01", b"SSH-2.0-x\r\n"])
async def test_binary_protocols_are_not_mistaken_for_http(payload: bytes) -> None:
    _, proto, t = connect()
    proto.data_received(payload)
    assert t.out == b"web-0" and t.closed
