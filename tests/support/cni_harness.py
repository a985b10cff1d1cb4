"""What weir-cni's integration tests and benchmark need around the real plugin.

- `NodeLoaderDouble`: a small aiohttp server on a unix socket speaking `weir.endpoint_api`
  (PUT/GET/DELETE endpoints, list, healthz), in a thread of the test process. It records every
  request and can be told to fail, so the plugin's error paths can be driven. It stands in for
  node-loader only in these tests; it programs no datapath.
- `Netns`: a network namespace this test made (`ip netns add`), always deleted on the way out.
- `Runtime`: invokes `.venv/bin/weir-cni` the way a container runtime does — CNI_* variables,
  the network config on stdin — inside the node's namespace (`nsenter --net=`), never in the
  test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from weir import endpoint_api
from weir.cni_config import PluginConfig, conflist
from weir.endpoint_api import EndpointRequest

from tests.support.processes import VENV_BIN

WEIR_CNI = VENV_BIN / "weir-cni"


class NodeLoaderDouble:
    """node-loader's endpoint API, in memory, on `socket_path`."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        # Knobs for error paths: answer PUTs with this status (and message), or be unhealthy.
        self.put_status: int | None = None
        self.put_message = "injected failure"
        self.delete_status: int | None = None
        self.healthy = True
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- handlers --------------------------------------------------------------------------

    async def _put(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        self._record("PUT", cid)
        if self.put_status is not None:
            return web.json_response({"error": self.put_message}, status=self.put_status)
        try:
            req = EndpointRequest.from_json(await request.read())
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        if req.container_id != cid:
            return web.json_response({"error": "container id differs from path"}, status=400)
        record = {"node": "test-node", **asdict(req)}
        with self._lock:
            self.endpoints[cid] = record
        return web.json_response(record)

    async def _get(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        self._record("GET", cid)
        with self._lock:
            record = self.endpoints.get(cid)
        if record is None:
            return web.json_response({"error": f"no endpoint {cid}"}, status=404)
        return web.json_response({**record, "counters": {}})

    async def _delete(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        self._record("DELETE", cid)
        if self.delete_status is not None:
            return web.json_response({"error": "injected failure"}, status=self.delete_status)
        with self._lock:
            self.endpoints.pop(cid, None)
        return web.json_response({})

    async def _list(self, request: web.Request) -> web.Response:
        self._record("LIST", "")
        with self._lock:
            return web.json_response({"endpoints": list(self.endpoints.values())})

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.healthy:
            return web.json_response({"ok": True})
        return web.json_response({"error": "not ready"}, status=503)

    def _record(self, method: str, cid: str) -> None:
        with self._lock:
            self.requests.append((method, cid))

    def calls(self, method: str) -> list[str]:
        with self._lock:
            return [cid for m, cid in self.requests if m == method]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        app = web.Application()
        path = endpoint_api.PREFIX + "/{cid}"
        app.router.add_put(path, self._put)
        app.router.add_get(path, self._get)
        app.router.add_delete(path, self._delete)
        app.router.add_get(endpoint_api.PREFIX, self._list)
        app.router.add_get("/v1/healthz", self._healthz)

        async def serve() -> None:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.UnixSite(self._runner, str(self.socket_path)).start()
            ready.set()

        def thread() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            self._loop.close()

        self._thread = threading.Thread(target=thread, name="node-loader-double", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("node-loader double did not start")

    def stop(self) -> None:
        """Stop serving (the socket goes away, as when node-loader is down); idempotent."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Netns:
    """A network namespace under /run/netns that this process made and will delete."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    def create(self) -> Netns:
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        ip("netns", "del", self.name, check=False)

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A command inside this namespace (nsenter: no /sys remount as `ip netns exec` does)."""
        return subprocess.run(
            ["nsenter", f"--net={self.path}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ip_json(self, *args: str) -> Any:
        out = self.run("ip", "-j", *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout or "[]")

    def sysctl(self, key: str, value: str) -> None:
        out = self.run("sysctl", "-qw", f"{key}={value}")
        assert out.returncode == 0, out.stderr


def unique(prefix: str) -> str:
    """A namespace name no other run shares (wtest-cni-… as the tests' namespaces are)."""
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[list[Netns]]:
    made: list[Netns] = []
    try:
        for name in names:
            made.append(Netns(name).create())
        yield made
    finally:
        for ns in reversed(made):
            ns.delete()


@dataclass
class Outcome:
    """One plugin run: exit code, stdout (parsed when it is JSON) and stderr."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def code(self) -> int | None:
        """The CNI error code, when the run failed with an error object."""
        doc = self.json
        return doc.get("code") if isinstance(doc, dict) else None


@dataclass
class Runtime:
    """Invokes weir-cni for one network, as a runtime would, inside the node namespace."""

    node: Netns
    config: PluginConfig
    cni_version: str = "1.0.0"
    extra: dict[str, Any] = field(default_factory=dict)

    def netconf(self, **overrides: Any) -> dict[str, Any]:
        """The `weir-cni` entry of node-loader's conflist, with name and cniVersion added."""
        listing = conflist(self.config)
        plugin = {"cniVersion": self.cni_version, "name": listing["name"]}
        plugin.update(listing["plugins"][0])
        plugin.update(self.extra)
        plugin.update(overrides)
        return plugin

    def env(self, command: str, cid: str = "", netns: str = "", **more: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{cid}"
            f";K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{cid}",
        }
        env.update(more)
        return {k: v for k, v in env.items() if v != "" or k == "CNI_ARGS"}

    def invoke(self, env: dict[str, str], stdin: str | dict[str, Any]) -> Outcome:
        data = stdin if isinstance(stdin, str) else json.dumps(stdin)
        proc = subprocess.run(
            ["nsenter", f"--net={self.node.path}", str(WEIR_CNI)],
            input=data,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    def add(self, cid: str, pod: Netns, **overrides: Any) -> Outcome:
        return self.invoke(self.env("ADD", cid, pod.path), self.netconf(**overrides))

    def delete(self, cid: str, pod: Netns | None = None, **overrides: Any) -> Outcome:
        return self.invoke(self.env("DEL", cid, pod.path if pod else ""), self.netconf(**overrides))

    def check(self, cid: str, pod: Netns, prev: dict[str, Any]) -> Outcome:
        return self.invoke(self.env("CHECK", cid, pod.path), self.netconf(prevResult=prev))
