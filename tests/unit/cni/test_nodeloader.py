"""weir-cni's small HTTP client for node-loader's unix socket, against canned answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from weir.endpoint_api import EndpointRequest
from weir_cni.nodeloader import Client, Unreachable

REQUEST = EndpointRequest(
    container_id="c1",
    pod_namespace="ns",
    pod_name="p",
    ip="10.0.0.2",
    mac="0a:00:00:00:00:02",
    host_ifname="wr0123456789a",
    host_ifindex=7,
    host_mac="0a:00:00:00:00:01",
    netns="/run/netns/p",
    ifname="eth0",
    pod_uid="0c2b6a4e-uid",
)


class CannedServer:
    """Accepts one connection at a time, records the request, sends `answer` and closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        self.delay = 0.0
        self.received: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(body) < length:
                    body += conn.recv(65536)
                self.received.append(head + b"\r\n\r\n" + body)
                time.sleep(self.delay)
                with contextlib.suppress(OSError):
                    conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CannedServer]:
    s = CannedServer(tmp_path / "nl.sock")
    try:
        yield s
    finally:
        s.close()


def test_put_sends_the_endpoint_request(server: CannedServer) -> None:
    response = Client(str(server.path)).put_endpoint(REQUEST)
    assert response.ok
    head, _, body = server.received[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PUT /v1/endpoints/c1 HTTP/1.1"
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert EndpointRequest.from_json(body) == REQUEST


def test_a_request_without_pod_uid_is_still_understood() -> None:
    # What a plugin built before pod_uid existed sends: node-loader must accept it.
    old = json.loads(REQUEST.to_json())
    del old["pod_uid"]
    assert EndpointRequest.from_json(json.dumps(old)).pod_uid == ""
    with pytest.raises(ValueError, match="pod_uid must be a str"):
        EndpointRequest.from_json(json.dumps({**old, "pod_uid": 7}))


def test_get_and_delete_paths(server: CannedServer) -> None:
    client = Client(str(server.path))
    client.get_endpoint("c1")
    client.delete_endpoint("c1")
    client.list_endpoints()
    client.healthz()
    first_lines = [r.split(b"\r\n")[0].decode() for r in server.received]
    assert first_lines == [
        "GET /v1/endpoints/c1 HTTP/1.1",
        "DELETE /v1/endpoints/c1 HTTP/1.1",
        "GET /v1/endpoints HTTP/1.1",
        "GET /v1/healthz HTTP/1.1",
    ]


def test_error_message_comes_from_the_body(server: CannedServer) -> None:
    body = json.dumps({"error": "tc attach failed: EPERM"}).encode()
    server.answer = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    response = Client(str(server.path)).put_endpoint(REQUEST)
    assert response.status == 500
    assert not response.ok
    assert response.message() == "tc attach failed: EPERM"


def test_chunked_body(server: CannedServer) -> None:
    server.answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"ip"\r\n0d\r\n: "10.0.0.2"}\r\n0\r\n\r\n'
    )
    assert Client(str(server.path)).get_endpoint("c1").json() == {"ip": "10.0.0.2"}


def test_body_until_close(server: CannedServer) -> None:
    server.answer = b"HTTP/1.0 404 Not Found\r\n\r\nno such endpoint"
    response = Client(str(server.path)).get_endpoint("c1")
    assert response.status == 404
    assert response.message() == "no such endpoint"


def test_missing_socket_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(Unreachable):
        Client(str(tmp_path / "nothing.sock")).healthz()


def test_refused_socket_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    with pytest.raises(Unreachable):
        Client(str(path)).healthz()


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a word
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_broken_answers_are_unreachable(server: CannedServer, answer: bytes) -> None:
    server.answer = answer
    with pytest.raises(Unreachable):
        Client(str(server.path)).healthz()


def test_slow_answer_times_out(server: CannedServer) -> None:
    server.delay = 2.0
    started = time.monotonic()
    with pytest.raises(Unreachable):
        Client(str(server.path), timeout=0.3).put_endpoint(REQUEST)
    assert time.monotonic() - started < 1.5
