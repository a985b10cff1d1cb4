"""Reachability probes between local pods: `weir dev probe` and `weir dev probe-matrix`.

Every local pod answers on each declared containerPort with its own name — HTTP GET over TCP,
any datagram over UDP. A probe opens its socket inside the source pod's network namespace and
counts as reachable only when the answer is the name it expected, so a reply from the wrong
pod, a reset, a drop and a timeout all count as unreachable. The probes of a matrix run
concurrently in one thread; a blocked pair costs only its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass, field

from weir.netns import entered, path_of

UDP_RETRY = 0.3  # seconds between datagrams: the first may wait on ARP, or be dropped


@dataclass(frozen=True)
class Target:
    address: str
    expect: frozenset[str] = frozenset()  # empty: any non-empty name will do


@dataclass
class Result:
    reachable: bool
    answer: str = ""
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def open_socket(netns: str, protocol: str) -> socket.socket:
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with entered(path_of(netns)):
        sock = socket.socket(socket.AF_INET, kind)
    sock.setblocking(False)
    return sock


async def _tcp(sock: socket.socket, target: Target, port: int) -> str:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (target.address, port))
    await loop.sock_sendall(sock, b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
    data = b""
    while chunk := await loop.sock_recv(sock, 4096):
        data += chunk
        if len(data) > 65536:
            break
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        raise ConnectionError(f"unexpected answer {data[:60]!r}")
    return body.decode(errors="replace").strip()


async def _udp(sock: socket.socket, target: Target, port: int) -> str:
    loop = asyncio.get_running_loop()
    while True:
        await loop.sock_sendto(sock, b"hostname\n", (target.address, port))
        try:
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), UDP_RETRY)
        except TimeoutError:
            continue
        return data.decode(errors="replace").strip()


async def probe(
    netns: str, target: Target, port: int, *, protocol: str = "tcp", within: float = 2.0
) -> Result:
    started = time.monotonic()
    try:
        sock = open_socket(netns, protocol)
    except OSError as e:
        return Result(False, error=f"cannot open a socket in {netns}: {e}")
    try:
        exchange = _tcp if protocol == "tcp" else _udp
        answer = await asyncio.wait_for(exchange(sock, target, port), within)
    except TimeoutError:
        return Result(False, error=f"no answer in {within:g}s", seconds=time.monotonic() - started)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)  # "Connection refused", ...
        return Result(False, error=reason, seconds=time.monotonic() - started)
    except ConnectionError as e:
        return Result(False, error=str(e), seconds=time.monotonic() - started)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    ok = bool(answer) and (not target.expect or answer in target.expect)
    error = "" if ok else f"answered {answer!r}, expected one of {sorted(target.expect)}"
    return Result(ok, answer=answer, error=error, seconds=time.monotonic() - started)
