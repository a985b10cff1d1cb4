"""`weir-local-apiserver`: run the local Kubernetes API server until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from .allocators import parse_port_range
from .config import Config
from .server import build_app

log = logging.getLogger("weir_local.apiserver")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="weir-local-apiserver",
        description="Weir's local Kubernetes API server (kubectl and client-go/kubernetes-asyncio "
        "clients work against it).",
    )
    p.add_argument("--state-dir", required=True, type=Path, help="where the SQLite state lives")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one)")
    p.add_argument("--url-file", type=Path, help="write http://127.0.0.1:PORT here once serving")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    p.add_argument("--service-node-port-range", default="30000-32767")
    p.add_argument("--watch-history", type=int, default=50_000, help="events kept for watches")
    p.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between bookmarks")
    p.add_argument(
        "--watch-queue-length",
        type=int,
        default=10_000,
        help="events a slow watcher may lag before it is closed",
    )
    p.add_argument("--event-ttl", type=float, default=3600.0, help="seconds an Event lives")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    try:
        is_loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        is_loopback = args.host == "localhost"
    if not is_loopback and not args.allow_remote:
        p.error(f"--host {args.host} is not a loopback address; pass --allow-remote to allow it")
    try:
        ipaddress.IPv4Network(args.service_cluster_ip_range, strict=False)
        parse_port_range(args.service_node_port_range)
    except ValueError as e:
        p.error(str(e))
    return args


def config_from(args: argparse.Namespace) -> Config:
    return Config(
        state_dir=args.state_dir,
        service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range,
        watch_history=args.watch_history,
        bookmark_interval=args.bookmark_interval,
        watch_queue_limit=args.watch_queue_length,
        event_ttl=args.event_ttl,
    )


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def serve(args: argparse.Namespace) -> None:
    app = build_app(config_from(args))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        site = web.SockSite(runner, sock)
        await site.start()
        port = sock.getsockname()[1]
        if args.host in ("127.0.0.1", "0.0.0.0", "localhost"):
            host = "127.0.0.1"
        elif ":" in args.host:
            host = f"[{args.host}]"  # an IPv6 literal in a URL
        else:
            host = args.host
        url = f"http://{host}:{port}"
        if args.url_file is not None:
            write_atomically(args.url_file, url + "\n")
        log.info("serving the Kubernetes API at %s (state in %s)", url, args.state_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
