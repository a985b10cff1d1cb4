"""A small HTTP/1.1 client for node-loader's endpoint API on its unix socket.

The contract is `weir.endpoint_api`. This speaks just enough HTTP for it (one request per
connection, Content-Length or chunked bodies) on a plain socket: `http.client` would cost
about 12 ms of imports (ssl, email) on every plugin run, a third of an ADD.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, NamedTuple

from weir import endpoint_api
from weir.endpoint_api import EndpointRequest

# How long ADD waits for node-loader to put the endpoint's datapath in place. Programs are
# compiled when node-loader starts, so a registration is map writes and a tc attach.
TIMEOUT_S = 30.0
_MAX_RESPONSE = 16 * 1024 * 1024


class Unreachable(Exception):
    """node-loader did not answer: no socket, refused, closed early, or too slow."""


class Response(NamedTuple):
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status == 200

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def message(self) -> str:
        """node-loader's `{"error": ...}` text, or the raw body."""
        doc = self.json()
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return str(doc["error"])
        return self.body.decode(errors="replace")[:500]


class Client:
    def __init__(self, socket_path: str, timeout: float = TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def put_endpoint(self, request: EndpointRequest) -> Response:
        return self.request("PUT", endpoint_api.path(request.container_id), request.to_json())

    def get_endpoint(self, container_id: str) -> Response:
        return self.request("GET", endpoint_api.path(container_id))

    def delete_endpoint(self, container_id: str) -> Response:
        return self.request("DELETE", endpoint_api.path(container_id))

    def list_endpoints(self) -> Response:
        return self.request("GET", endpoint_api.PREFIX)

    def healthz(self) -> Response:
        return self.request("GET", "/v1/healthz")

    def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        deadline = time.monotonic() + self.timeout
        head = [f"{method} {path} HTTP/1.1", "Host: node-loader", "Connection: close"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        wire = ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
                sock.sendall(wire)
                return _read_response(sock, deadline)
            except (OSError, TimeoutError, ValueError) as e:
                raise Unreachable(f"node-loader at {self.socket_path}: {e}") from None
        finally:
            sock.close()


class _Reader:
    """Buffered reads from a socket with one overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.eof = False

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete answer in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buf += chunk
        if len(self.buf) > _MAX_RESPONSE:
            raise OSError("response too large")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if self.eof:
                raise OSError("connection closed mid-response")
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof:
                raise OSError("connection closed mid-body")
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while not self.eof:
            self._fill()
        out, self.buf = self.buf, b""
        return out


def _read_response(sock: socket.socket, deadline: float) -> Response:
    reader = _Reader(sock, deadline)
    status_line = reader.line().decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = reader.line()
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(reader.line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            body += reader.exactly(size)
            reader.line()  # the CRLF after each chunk
    elif "content-length" in headers:
        body = reader.exactly(int(headers["content-length"]))
    else:
        body = reader.rest()
    return Response(status, body)
