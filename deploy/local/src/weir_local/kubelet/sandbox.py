"""Pod sandboxes on this node: network namespace, CNI attachment, record on disk, servers.

A record (`<state>/sandboxes/<uid>.json`) is written before anything is made for a pod and
removed only after everything is gone, so after a crash every sandbox is found again:

- stage `adding`: ADD was started and its outcome is unknown; the sandbox is torn down
  (DEL without a result, as CNI allows) and made again;
- stage `ready`: the CNI result is kept (CHECK and DEL get it as prevResult, with the very
  network configuration ADD used, even if the node's config has changed since);
- a namespace `<prefix>-<uid>` with no record is an orphan when it is known to be this node's
  (its pod is bound here, or its veth peer is in this node's namespace): DEL with the current
  configuration, then removed. Other namespaces under the prefix belong to other nodes.

Setup order: record → netns → ADD → record the result → serve. Teardown order: stop serving
(nothing may hold the namespace) → DEL → delete the netns → remove the record. A failed ADD
is undone at once (best-effort DEL, netns and record removed) so the next try starts clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from . import netns
from .cni import Attachment, CniError, CniRunner, NetworkConfig, result_ips
from .core import PodInfo, SandboxView, Stage
from .servers import PodServer

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def _ip_json(node_netns: Path, *args: str) -> list[dict[str, Any]]:
    """`ip -j ARGS` run inside `node_netns` (entered by setns in the child, as CNI plugins)."""
    fd = os.open(node_netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "-j",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=functools.partial(netns.setns, fd),
        )
    finally:
        os.close(fd)
    out, err = await proc.communicate()
    if proc.returncode:
        raise OSError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")
    parsed = orjson.loads(out) if out.strip() else []
    return [x for x in parsed if isinstance(x, dict)] if isinstance(parsed, list) else []


class NetworkNotReady(Exception):
    """No CNI configuration for the network yet: pods wait, as a real kubelet's do."""


@dataclass(slots=True, kw_only=True)
class SandboxRecord:
    uid: str
    namespace: str
    name: str
    netns: str  # name under the netns dir; "" for a host-network pod
    created: float
    stage: Stage = Stage.ADDING
    network: Obj | None = None  # the configuration list ADD used
    result: Obj | None = None  # the CNI result of ADD
    ready_at: float | None = None
    host_network: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> SandboxRecord:
        data = orjson.loads(raw)
        data["stage"] = Stage(data.get("stage", Stage.ADDING))
        return cls(**data)

    @property
    def pod_ips(self) -> tuple[str, ...]:
        return tuple(result_ips(self.result or {}))


class RecordStore:
    """One JSON file per sandbox; written atomically (temp file, rename)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def load(self) -> dict[str, SandboxRecord]:
        self.dir.mkdir(parents=True, exist_ok=True)
        out: dict[str, SandboxRecord] = {}
        for path in sorted(self.dir.glob("*.json")):
            uid = path.stem
            try:
                rec = SandboxRecord.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError) as e:
                # Unreadable: keep what the name tells, so the sandbox is still torn down.
                log.warning("sandbox record %s unreadable (%s); treating as unfinished", path, e)
                rec = SandboxRecord(uid=uid, namespace="", name="", netns="", created=0.0)
            if rec.uid != uid:
                log.warning("sandbox record %s names uid %s; ignoring it", path, rec.uid)
                continue
            out[uid] = rec
        return out

    def save(self, rec: SandboxRecord) -> None:
        path = self.dir / f"{rec.uid}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(rec.to_json())
        os.replace(tmp, path)

    def remove(self, uid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{uid}.json").unlink()


class Runtime:
    """Makes, adopts and removes sandboxes; knows which exist and which are served."""

    def __init__(
        self,
        *,
        prefix: str,
        netns_dir: Path,
        node_netns: Path,
        cni: CniRunner,
        records: RecordStore,
        network: Callable[[], NetworkConfig | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.netns_dir = netns_dir
        self.node_netns = node_netns
        self.cni = cni
        self.store = records
        self.network = network
        self.clock = clock
        self.records: dict[str, SandboxRecord] = records.load()
        self.servers: dict[str, PodServer] = {}
        self.orphans: set[str] = set()  # unrecorded namespaces found wired to this node

    # ---- reading actual state ----------------------------------------------------------------

    def netns_name(self, uid: str) -> str:
        return f"{self.prefix}-{uid}"

    async def scan(self) -> set[str]:
        """The uids of this node's sandboxes: every record, plus pod namespaces without one
        whose veth peer lives in this node's namespace (a crash between the namespace and its
        record, or a wiped state dir). Under a prefix shared by several nodes, as `weir dev`
        uses, the other nodes' pod namespaces are never taken for ours."""
        names = netns.names_with_prefix(self.prefix, self.netns_dir)
        unrecorded = {netns.uid_of(n, self.prefix) for n in names} - set(self.records)
        self.orphans = set()
        if unrecorded:
            linked = await self._wired_here()
            self.orphans = {u for u in unrecorded if self.netns_name(u) in linked}
        return set(self.records) | self.orphans

    async def _wired_here(self) -> set[str]:
        """Names of the namespaces holding the peers of this node's veths (`ip -j`, inside the
        node namespace: link_netnsid of each veth, named by `netns list-id`)."""
        try:
            links = await _ip_json(self.node_netns, "link", "show", "type", "veth")
            ids = await _ip_json(self.node_netns, "netns", "list-id")
        except (OSError, ValueError) as e:
            log.warning("cannot list the node's veth peers (%s); no orphan is taken as ours", e)
            return set()
        peers = {link.get("link_netnsid") for link in links if "link_netnsid" in link}
        return {str(i["name"]) for i in ids if i.get("nsid") in peers and i.get("name")}

    def view(self, uid: str, *, bound_here: bool = False) -> SandboxView:
        """What the node has for `uid`. A namespace without a record counts only when it is
        known ours: its pod is bound here, or `scan` found it wired to this node."""
        rec = self.records.get(uid)
        if rec is None:
            path = netns.path_of(self.netns_name(uid), self.netns_dir)
            if (bound_here or uid in self.orphans) and netns.is_netns(path):
                return SandboxView(stage=Stage.ORPHAN, netns_present=True)
            return SandboxView()
        path = self.node_netns if rec.host_network else netns.path_of(rec.netns, self.netns_dir)
        return SandboxView(
            stage=rec.stage, serving=uid in self.servers, netns_present=netns.is_netns(path)
        )

    # ---- changing it -------------------------------------------------------------------------

    def _attachment(self, rec: SandboxRecord) -> Attachment:
        return Attachment(
            container_id=rec.uid,
            netns=str(netns.path_of(rec.netns or self.netns_name(rec.uid), self.netns_dir)),
            namespace=rec.namespace,
            name=rec.name,
            uid=rec.uid,
        )

    async def setup(self, pod: PodInfo) -> SandboxRecord:
        net = None if pod.host_network else self.network()
        if net is None and not pod.host_network:
            raise NetworkNotReady("network is not ready: no CNI configuration")
        rec = SandboxRecord(
            uid=pod.uid,
            namespace=pod.namespace,
            name=pod.name,
            netns="" if pod.host_network else self.netns_name(pod.uid),
            created=self.clock(),
            network=net.raw if net is not None else None,
            host_network=pod.host_network,
        )
        self._save(rec)
        if net is not None:
            netns.create(rec.netns, self.netns_dir)
            try:
                rec.result = await self.cni.add(net, self._attachment(rec))
            except Exception:
                # (Cancelled at shutdown: the record stays `adding`; the next start rebuilds.)
                await self._undo(rec, net)
                raise
        rec.stage = Stage.READY
        rec.ready_at = self.clock()
        self._save(rec)
        await self.serve(pod)
        return rec

    async def _undo(self, rec: SandboxRecord, net: NetworkConfig) -> None:
        """After a failed ADD: DEL (best effort), then the namespace and the record."""
        try:
            await self.cni.delete(net, self._attachment(rec), None)
        except CniError as e:
            log.warning("pod %s/%s: DEL after failed ADD: %s", rec.namespace, rec.name, e)
        netns.delete(rec.netns, self.netns_dir)
        self._forget(rec.uid)

    async def adopt(self, pod: PodInfo) -> None:
        """A sandbox from before a restart: CHECK it, then serve it again (CniError: broken)."""
        rec = self.records[pod.uid]
        if not rec.host_network and rec.network is not None and rec.result is not None:
            net = NetworkConfig("(sandbox record)", rec.network)
            await self.cni.check(net, self._attachment(rec), rec.result)
        await self.serve(pod)

    async def serve(self, pod: PodInfo) -> None:
        rec = self.records[pod.uid]
        self.stop_serving(pod.uid)
        path = self.node_netns if rec.host_network else netns.path_of(rec.netns, self.netns_dir)
        server = PodServer(pod.name, path, pod.ports)
        await server.start()
        self.servers[pod.uid] = server

    def stop_serving(self, uid: str) -> None:
        server = self.servers.pop(uid, None)
        if server is not None:
            server.close()

    async def teardown(self, uid: str) -> None:
        """Remove everything of the sandbox; CniError (DEL failed) leaves it for a retry."""
        self.stop_serving(uid)
        rec = self.records.get(uid)
        if rec is not None and rec.host_network:
            self._forget(uid)
            return
        if rec is None:  # an orphan namespace: all we know is its name
            rec = SandboxRecord(
                uid=uid, namespace="", name="", netns=self.netns_name(uid), created=0.0
            )
        net = (
            NetworkConfig("(sandbox record)", rec.network)
            if rec.network is not None
            else self.network()
        )
        if net is not None:
            await self.cni.delete(net, self._attachment(rec), rec.result)
        else:
            log.warning("sandbox %s: no CNI configuration to DEL with; removing its netns", uid)
        netns.delete(rec.netns or self.netns_name(uid), self.netns_dir)
        self._forget(uid)
        self.orphans.discard(uid)

    def _save(self, rec: SandboxRecord) -> None:
        self.records[rec.uid] = rec
        self.store.save(rec)

    def _forget(self, uid: str) -> None:
        self.records.pop(uid, None)
        self.store.remove(uid)
