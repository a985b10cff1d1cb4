"""CNI, as a container runtime drives it (CNI spec 1.0, network configuration lists).

The network: the lexically first `*.conflist` in the config directory whose `name` is the
wanted network. Each plugin of the list is executed as `<bin dir>/<type>` with the CNI_*
variables and its own config on stdin, `name` and `cniVersion` copied in from the list:

- ADD runs the plugins in order, each given the previous one's result as `prevResult`; the
  last result is the attachment's result, which the runtime keeps;
- CHECK runs them in order and DEL in reverse, both with the kept ADD result as `prevResult`
  (DEL also works without one, for an ADD whose outcome is unknown).

The plugin runs inside the node's network namespace: the child process calls setns(2) on a
descriptor the parent opened, in preexec_fn, before exec. A CNI error object (or a plugin
that prints nothing useful) becomes `CniError`; code 11 means "try again later" and is
retried here with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import netns

log = logging.getLogger(__name__)

Obj = dict[str, Any]
TRY_AGAIN_LATER = 11  # CNI spec error code
EXEC_FAILED = 999  # our code for a plugin that could not be run or answered garbage
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin

    def __str__(self) -> str:
        text = self.msg + (f"; {self.details}" if self.details else "")
        return f"plugin type={self.plugin!r}: {text}" if self.plugin else text


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """One network configuration list, as read from disk."""

    path: str
    raw: Obj  # the whole list; what a sandbox record keeps for its CHECK and DEL

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def cni_version(self) -> str:
        return str(self.raw.get("cniVersion") or "1.0.0")

    @property
    def plugins(self) -> list[Obj]:
        return list(self.raw["plugins"])

    @property
    def disable_check(self) -> bool:
        return bool(self.raw.get("disableCheck"))


@dataclass(frozen=True, slots=True)
class Attachment:
    """Who a CNI call is for: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS."""

    container_id: str
    netns: str
    namespace: str
    name: str
    uid: str
    ifname: str = "eth0"

    def cni_args(self) -> str:
        return (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME={self.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id};K8S_POD_UID={self.uid}"
        )


# ---- pure --------------------------------------------------------------------------------------


def parse_network(path: str, text: bytes) -> NetworkConfig:
    """A validated configuration list; ValueError says what is wrong."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError(f"{path}: no network name")
    plugins = raw.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ValueError(f"{path}: no plugins")
    for p in plugins:
        if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"]:
            raise ValueError(f"{path}: every plugin needs a type")
        if "/" in p["type"]:
            raise ValueError(f"{path}: plugin type {p['type']!r} is not a file name")
    version = raw.get("cniVersion", "1.0.0")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: unsupported cniVersion {version!r}")
    return NetworkConfig(path, raw)


def find_network(conf_dir: Path, network: str) -> tuple[NetworkConfig | None, list[str]]:
    """The lexically first valid `*.conflist` naming `network`, and the problems seen on the
    way (unreadable or invalid files are skipped, as runtimes do)."""
    problems: list[str] = []
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(".conflist"))
    except OSError as e:
        return None, [f"{conf_dir}: {e.strerror}"]
    for fname in names:
        path = conf_dir / fname
        try:
            net = parse_network(str(path), path.read_bytes())
        except (OSError, ValueError) as e:
            problems.append(str(e))
            continue
        if net.name == network:
            return net, problems
    return None, problems


def plugin_stdin(net: NetworkConfig, plugin: Obj, prev_result: Obj | None) -> bytes:
    conf = dict(plugin)
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    else:
        conf.pop("prevResult", None)
    return orjson.dumps(conf)


def environment(
    command: str, att: Attachment, cni_path: Sequence[Path], base: Mapping[str, str]
) -> dict[str, str]:
    env = dict(base)
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=att.container_id,
        CNI_NETNS=att.netns,
        CNI_IFNAME=att.ifname,
        CNI_ARGS=att.cni_args(),
        CNI_PATH=":".join(str(p) for p in cni_path),
    )
    return env


def parse_output(plugin: str, command: str, returncode: int, stdout: bytes, stderr: bytes) -> Obj:
    """The plugin's result ({} for a silent success), or CniError from its error object."""
    text = stdout.strip()
    if returncode == 0:
        if not text:
            if command == "ADD":
                raise CniError(EXEC_FAILED, "ADD returned no result", plugin=plugin)
            return {}
        try:
            result = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise CniError(
                EXEC_FAILED, f"{command} printed a result that is not JSON", plugin=plugin
            ) from None
        if not isinstance(result, dict):
            raise CniError(EXEC_FAILED, f"{command} result is not an object", plugin=plugin)
        return result
    try:
        err = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        err = None
    if isinstance(err, dict) and "code" in err:
        code = err.get("code")
        raise CniError(
            int(code) if isinstance(code, int) else EXEC_FAILED,
            str(err.get("msg") or f"{command} failed"),
            str(err.get("details") or ""),
            plugin=plugin,
        )
    tail = (stderr or stdout).decode(errors="replace").strip()[-500:]
    raise CniError(EXEC_FAILED, f"{command} exited with status {returncode}", tail, plugin=plugin)


def result_ips(result: Obj) -> list[str]:
    """The pod's addresses from a CNI result (prefix lengths dropped), IPv4 first."""
    out = []
    for entry in result.get("ips") or []:
        addr = str((entry or {}).get("address") or "").split("/")[0]
        if addr and addr not in out:
            out.append(addr)
    return sorted(out, key=lambda a: ":" in a)


# ---- the shell: executing plugins --------------------------------------------------------------


class CniRunner:
    """Executes the plugins of a network for one attachment, a bounded number at once."""

    def __init__(
        self,
        bin_dirs: Sequence[Path],
        node_netns: Path,
        *,
        limit: int,
        timeout: float,
        retries: int = 5,
        observe: Any = None,
    ) -> None:
        self.bin_dirs = tuple(bin_dirs)
        self.node_netns = node_netns
        self._slots = asyncio.Semaphore(limit)
        self.timeout = timeout
        self.retries = retries
        # observe(command, plugin, seconds, ok): metrics hook
        self._observe = observe or (lambda *a: None)

    async def add(self, net: NetworkConfig, att: Attachment) -> Obj:
        result: Obj | None = None
        for plugin in net.plugins:
            result = await self._run("ADD", net, plugin, att, result)
        assert result is not None
        return result

    async def check(self, net: NetworkConfig, att: Attachment, prev_result: Obj) -> None:
        if net.disable_check or net.cni_version in ("0.3.0", "0.3.1"):
            return  # CHECK arrived with 0.4.0
        for plugin in net.plugins:
            await self._run("CHECK", net, plugin, att, prev_result)

    async def delete(self, net: NetworkConfig, att: Attachment, prev_result: Obj | None) -> None:
        for plugin in reversed(net.plugins):
            await self._run("DEL", net, plugin, att, prev_result)

    def find(self, plugin_type: str) -> Path:
        for d in self.bin_dirs:
            candidate = d / plugin_type
            if os.access(candidate, os.X_OK) and candidate.is_file():
                return candidate
        dirs = " ".join(str(d) for d in self.bin_dirs)
        raise CniError(EXEC_FAILED, f'failed to find plugin "{plugin_type}" in path [{dirs}]')

    async def _run(
        self, command: str, net: NetworkConfig, plugin: Obj, att: Attachment, prev: Obj | None
    ) -> Obj:
        ptype = str(plugin["type"])
        stdin = plugin_stdin(net, plugin, prev)
        env = environment(command, att, self.bin_dirs, os.environ)
        delay = 0.1
        for attempt in range(self.retries + 1):
            try:
                return await self._exec(ptype, command, env, stdin)
            except CniError as e:
                if e.code != TRY_AGAIN_LATER or attempt == self.retries:
                    raise
                log.info("%s %s for %s: try again later (%s)", ptype, command, att.uid, e.msg)
            await asyncio.sleep(delay)  # outside the slot: others may run meanwhile
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def _exec(self, ptype: str, command: str, env: dict[str, str], stdin: bytes) -> Obj:
        binary = self.find(ptype)
        async with self._slots:
            start = time.monotonic()
            ok = False
            try:
                proc = await self._spawn(binary, ptype, env)
                try:
                    out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
                except TimeoutError:
                    raise CniError(
                        EXEC_FAILED, f"{command} timed out after {self.timeout:.0f}s", plugin=ptype
                    ) from None
                finally:
                    if proc.returncode is None:  # timed out or cancelled: never leave it running
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                result = parse_output(ptype, command, proc.returncode or 0, out, err)
                ok = True
                return result
            finally:
                self._observe(command, ptype, time.monotonic() - start, ok)

    async def _spawn(
        self, binary: Path, ptype: str, env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        try:
            node_fd = os.open(self.node_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise CniError(
                EXEC_FAILED, f"node network namespace {self.node_netns}: {e.strerror}"
            ) from None
        try:
            return await asyncio.create_subprocess_exec(
                str(binary),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                # setns(2) into the node before exec: the descriptor stays open in the child
                # until exec (close_fds runs after preexec_fn).
                preexec_fn=functools.partial(netns.setns, node_fd),
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise CniError(EXEC_FAILED, f"exec {binary}: {e}", plugin=ptype) from None
        finally:
            os.close(node_fd)
