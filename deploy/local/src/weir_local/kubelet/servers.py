"""The pods' containers: every declared port answered on TCP and UDP with the pod's name.

One asyncio loop serves every pod: no process or thread per pod. A pod's listening sockets
are created while this thread is switched into the pod's network namespace (setns(2)), and
the thread switches straight back; a socket keeps the namespace it was made in, so asyncio
then serves it like any other. Binding to the literal 0.0.0.0 needs no name lookup.

- TCP: an HTTP/1.x request gets `200 OK` with the pod's name as the body (keep-alive and
  pipelining as HTTP/1.1 allows); any other first bytes get the name, then the connection is
  closed.
- UDP: every datagram is answered with the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from . import netns

log = logging.getLogger(__name__)

HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE")
MAX_HEAD = 16 * 1024  # bytes of request line and headers we wait for
IDLE_TIMEOUT = 30.0  # seconds a connection may sit without sending a complete request
LISTEN_BACKLOG = 128


def _looks_like_http(buf: bytes) -> bool | None:
    """True for an HTTP request line, False for anything else, None while undecided."""
    for method in HTTP_METHODS:
        token = method + b" "
        if buf.startswith(token):
            return True
        if token.startswith(buf):
            return None  # "GE" so far: wait for more
    return False


def http_response(name: bytes, *, head: bool, keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(name)).encode() + b"\r\n"
        b"Connection: " + conn + b"\r\n\r\n" + (b"" if head else name)
    )


def parse_head(head: bytes) -> tuple[bytes, bool, int | None]:
    """(method, keep-alive, body length or None when unknowable) of a request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    method = parts[0]
    version = parts[2] if len(parts) > 2 else b"HTTP/1.0"
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if sep:
            headers[key.strip().lower()] = value.strip().lower()
    conn = headers.get(b"connection", b"")
    keep_alive = conn != b"close" if version == b"HTTP/1.1" else conn == b"keep-alive"
    length: int | None = 0
    if b"transfer-encoding" in headers:
        length = None  # chunked bodies are not parsed: answer, then close
    elif b"content-length" in headers:
        try:
            length = int(headers[b"content-length"])
        except ValueError:
            length = None
    return method, keep_alive, length


class _TcpResponder(asyncio.Protocol):
    def __init__(self, owner: PodServer) -> None:
        self.owner = owner
        self.buf = b""
        self.http: bool | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner.connections.add(transport)
        self.timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.owner.connections.discard(self.transport)
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        transport = self.transport
        assert transport is not None
        if self.http is None:
            self.http = _looks_like_http(self.buf)
            if self.http is None:
                return
            if not self.http:
                transport.write(self.owner.name)
                transport.close()
                return
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    transport.close()
                return
            method, keep_alive, length = parse_head(self.buf[:end])
            if length is None:
                keep_alive = False
            body_end = end + 4 + (length or 0)
            if len(self.buf) < body_end and keep_alive:
                return  # the rest of the body is still coming
            transport.write(
                http_response(self.owner.name, head=method == b"HEAD", keep_alive=keep_alive)
            )
            if not keep_alive:
                transport.close()
                return
            self.buf = self.buf[body_end:]
            self._rearm(transport)

    def _rearm(self, transport: asyncio.Transport) -> None:
        """A kept-alive connection gets a fresh idle period after each answered request."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, transport.abort)


class _UdpResponder(asyncio.DatagramProtocol):
    def __init__(self, owner: PodServer) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (Python 3.11's selector datagram transport does not subclass DatagramTransport.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.owner.name, addr)


def open_sockets(netns_path: Path | None, ports: Iterable[int]) -> list[socket.socket]:
    """A listening TCP and a bound UDP socket per port, made inside `netns_path` (None: here).

    All or nothing: on any failure every socket made so far is closed."""
    socks: list[socket.socket] = []
    ctx = netns.entered(netns_path) if netns_path is not None else contextlib.nullcontext()
    try:
        with ctx:
            for port in ports:
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(tcp)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind(("0.0.0.0", port))
                tcp.listen(LISTEN_BACKLOG)
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(udp)
                udp.bind(("0.0.0.0", port))
        for s in socks:
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


class PodServer:
    """The sockets of one pod, served on the running loop."""

    def __init__(self, name: str, netns_path: Path | None, ports: Iterable[int]) -> None:
        self.name = name.encode()
        self.netns_path = netns_path
        self.ports = tuple(sorted(set(ports)))
        self.connections: set[asyncio.Transport] = set()
        self._servers: list[asyncio.Server] = []
        self._datagrams: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        if not self.ports:
            return
        loop = asyncio.get_running_loop()
        socks = open_sockets(self.netns_path, self.ports)
        try:
            for s in socks:
                if s.type == socket.SOCK_STREAM:
                    server = await loop.create_server(lambda: _TcpResponder(self), sock=s)
                    self._servers.append(server)
                else:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _UdpResponder(self), sock=s
                    )
                    self._datagrams.append(transport)
        except BaseException:
            self.close()
            for s in socks:
                s.close()
            raise

    def close(self) -> None:
        """Stop listening and drop open connections, so nothing holds the namespace."""
        for server in self._servers:
            server.close()
        for transport in self._datagrams:
            transport.close()
        for conn in list(self.connections):
            conn.abort()
        self._servers.clear()
        self._datagrams.clear()
        self.connections.clear()
