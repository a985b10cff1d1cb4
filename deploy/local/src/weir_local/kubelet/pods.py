"""The pods bound to this node, made real: informer → cache → keyed work queue → reconcile.

Level-triggered. The informer keeps `pods` (uid → latest object) and queues the uid of every
change; after each (re)list it queues every uid it knew, had or now has, so a pod deleted
while the watch was down is still seen gone. Nothing acts before the first list: the node's
sandboxes (records, and namespaces wired to this node) are queued only then, so none is torn
down while the API has not yet been read. A periodic resync queues everything again.

A worker takes one uid at a time (never the same uid in two workers), reads the desired pod
and the actual sandbox, lets `core.decide` pick the action, performs it and writes status.
Failures are retried per pod with exponential backoff, and reported as Events; CNI calls are
bounded by the runner's own semaphore, so one slow pod never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .apiclient import ApiError, KubeClient
from .cni import CniError
from .core import Action, PodInfo, Stage, decide, pod_info
from .metrics import Metrics
from .node import NETWORK_NOT_READY
from .sandbox import NetworkNotReady, Runtime
from .status import Observed, desired_status, event, rfc3339, status_patch
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SANDBOX_CHANGED = "Pod sandbox changed, it will be killed and re-created."


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _newer(candidate: Obj, cached: Obj | None) -> bool:
    """Whether an object from a write response is newer than the cached one. The local API
    server's resourceVersions are integers; anything else is never assumed newer."""
    if cached is None:
        return False
    try:
        a = int((candidate.get("metadata") or {}).get("resourceVersion") or "")
        b = int((cached.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return False
    return a > b


class PodController:
    def __init__(
        self,
        *,
        node_name: str,
        host_ip: str,
        client: KubeClient,
        runtime: Runtime,
        metrics: Metrics,
        workers: int,
        resync: float,
        queue: WorkQueue[str] | None = None,
        clock: Callable[[], float] = time.time,
        on_state: Callable[[bool, str], None] = lambda ok, detail: None,
    ) -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        self.client = client
        self.runtime = runtime
        self.metrics = metrics
        self.workers = workers
        self.resync = resync
        self.queue: WorkQueue[str] = queue or WorkQueue()
        self.clock = clock
        self.on_state = on_state
        self.pods: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._taken: dict[str, float] = {}  # uid → when setup began (setup latency metric)
        self._events: dict[tuple[str, str, str], tuple[str, int]] = {}
        # Pods whose final DELETE was sent but whose watch event has not arrived yet.
        self._deleted: set[str] = set()

    # ---- informer sink -----------------------------------------------------------------------

    def replaced(self, pods: list[Obj]) -> None:
        fresh = {_uid(p): p for p in pods if _uid(p)}
        self._deleted &= set(fresh)
        for uid in set(self.pods) | set(fresh):
            self.queue.add(uid)
        self.pods = fresh
        self.metrics.pods.set(len(fresh))
        self.synced.set()

    def changed(self, event_type: str, pod: Obj) -> None:
        uid = _uid(pod)
        if not uid:
            return
        if event_type == "DELETED":
            self.pods.pop(uid, None)
            self._deleted.discard(uid)
        else:
            self.pods[uid] = pod
        self.metrics.pods.set(len(self.pods))
        self.queue.add(uid)

    def informer_state(self, ok: bool, detail: str) -> None:
        self.on_state(ok, detail)

    def network_changed(self, ready: bool) -> None:
        """The CNI configuration appeared (or went): look at every pod again, now."""
        if ready:
            for uid in self.pods:
                self.queue.forget(uid)
                self.queue.add(uid)

    # ---- loops -------------------------------------------------------------------------------

    async def queue_sandboxes(self) -> None:
        """Queue every sandbox found on the node (records, and namespaces wired here)."""
        for uid in await self.runtime.scan():
            self.queue.add(uid)

    async def run(self) -> None:
        await self.synced.wait()
        await self.queue_sandboxes()
        async with asyncio.TaskGroup() as tg:
            for i in range(self.workers):
                tg.create_task(self._worker(), name=f"pod-worker-{i}")
            tg.create_task(self._resync_loop(), name="pod-resync")

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for uid in self.pods:
                self.queue.add(uid)
            try:
                await self.queue_sandboxes()
            except OSError as e:
                log.warning("sandbox scan: %s", e)

    async def _worker(self) -> None:
        while True:
            uid = await self.queue.get()
            try:
                await self.reconcile(uid)
                self.queue.forget(uid)
            except (CniError, NetworkNotReady, ApiError, aiohttp.ClientError, OSError) as e:
                delay = self.queue.retry(uid)
                self.metrics.reconcile_errors.inc()
                log.warning("pod %s: %s; retrying in %.1fs", self._label(uid), e, delay)
            except Exception:
                delay = self.queue.retry(uid)
                self.metrics.reconcile_errors.inc()
                log.exception("pod %s: reconcile failed; retrying in %.1fs", uid, delay)
            finally:
                self.queue.done(uid)
                self.metrics.serving.set(len(self.runtime.servers))

    def _label(self, uid: str) -> str:
        pod = self.pods.get(uid)
        if pod is None:
            return uid
        m = pod["metadata"]
        return f"{m.get('namespace')}/{m.get('name')}"

    # ---- one pod -----------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> Action:
        pod = self.pods.get(uid)
        info = pod_info(pod) if pod is not None else None
        action = decide(info, self.runtime.view(uid, bound_here=pod is not None))
        if action is Action.FINALIZE and uid in self._deleted:
            action = Action.NONE  # deleted already; the watch has not caught up
        self.metrics.reconciles.labels(action.value).inc()
        if action is not Action.NONE:
            log.info("pod %s (%s): %s", self._label(uid), uid, action.value)
        if action is Action.SETUP:
            assert pod is not None and info is not None
            await self._setup(pod, info)
        elif action is Action.ADOPT:
            assert pod is not None and info is not None
            try:
                await self.runtime.adopt(info)
            except CniError as e:
                log.warning("pod %s: CHECK failed (%s); re-creating its sandbox", info.name, e)
                await self._rebuild(pod, info)
        elif action is Action.REBUILD:
            assert pod is not None and info is not None
            await self._rebuild(pod, info)
        elif action is Action.TEARDOWN:
            await self._teardown(pod, uid)
            self._forget(uid)
        elif action is Action.TERMINATE:
            assert pod is not None and info is not None
            await self._terminate(pod, info)
        elif action is Action.FINALIZE:
            assert info is not None
            await self._delete_pod(info)
            self._forget(uid)
        if info is not None and not info.deleting and not info.terminal:
            await self._sync_status(uid)
        return action

    async def _setup(self, pod: Obj, info: PodInfo) -> None:
        started = self._taken.setdefault(info.uid, self.clock())
        try:
            await self.runtime.setup(info)
        except NetworkNotReady:
            await self._post_event(
                pod, "Warning", "NetworkNotReady", f"network is not ready: {NETWORK_NOT_READY}"
            )
            await self._write_status(pod, self._creating(pod, NETWORK_NOT_READY))
            raise
        except CniError as e:
            message = (
                f'Failed to create pod sandbox: failed to setup network for sandbox "{info.uid}": '
                f'plugin type="{e.plugin}" failed (add): {e.msg}'
                + (f": {e.details}" if e.details else "")
            )
            await self._post_event(pod, "Warning", "FailedCreatePodSandBox", message)
            await self._write_status(pod, self._creating(pod, ""))
            raise
        except OSError as e:
            message = f"Failed to create pod sandbox: {e}"
            await self._post_event(pod, "Warning", "FailedCreatePodSandBox", message)
            raise
        self.metrics.setup_seconds.observe(self.clock() - started)
        self._taken.pop(info.uid, None)

    async def _rebuild(self, pod: Obj, info: PodInfo) -> None:
        await self._post_event(pod, "Normal", "SandboxChanged", SANDBOX_CHANGED)
        obs = self._observed(pod, ready=False)
        if obs is not None:  # the pod does not answer until its new sandbox does
            await self._write_status(pod, obs)
        await self._teardown(pod, info.uid)
        await self._setup(pod, info)

    async def _teardown(self, pod: Obj | None, uid: str) -> None:
        try:
            await self.runtime.teardown(uid)
        except CniError as e:
            if pod is not None:
                message = (
                    f'error killing pod: failed to destroy network for sandbox "{uid}": '
                    f'plugin type="{e.plugin}" failed (delete): {e.msg}'
                )
                await self._post_event(pod, "Warning", "FailedKillPod", message)
            raise

    async def _terminate(self, pod: Obj, info: PodInfo) -> None:
        """Graceful deletion: not ready first (endpoints drain), then stop, DEL, netns, and
        finally remove the API object."""
        rec = self.runtime.records.get(info.uid)
        if rec is not None and rec.stage is Stage.READY:
            obs = self._observed(pod, ready=False)
            if obs is not None:
                await self._write_status(pod, obs)
        await self._teardown(pod, info.uid)
        await self._delete_pod(info)
        self._forget(info.uid)

    async def _delete_pod(self, info: PodInfo) -> None:
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            # Never the pod of the same name created since.
            "preconditions": {"uid": info.uid},
        }
        try:
            await self.client.delete(
                f"/api/v1/namespaces/{info.namespace}/pods/{info.name}", options
            )
        except ApiError as e:
            if e.status != 409:
                raise
            log.info("pod %s/%s: not deleted: %s", info.namespace, info.name, e.message)
        self._deleted.add(info.uid)

    def _forget(self, uid: str) -> None:
        self._taken.pop(uid, None)
        for key in [k for k in self._events if k[0] == uid]:
            del self._events[key]

    # ---- status ------------------------------------------------------------------------------

    def _observed(self, pod: Obj, *, ready: bool) -> Observed | None:
        uid = _uid(pod)
        rec = self.runtime.records.get(uid)
        if rec is None or rec.stage is not Stage.READY or rec.ready_at is None:
            return None
        ips = (self.host_ip,) if rec.host_network else rec.pod_ips
        return Observed(
            host_ip=self.host_ip,
            pod_ips=ips,
            start_time=rfc3339(rec.created),
            started_at=rfc3339(rec.ready_at),
            ready=ready,
        )

    def _creating(self, pod: Obj, message: str) -> Observed:
        uid = _uid(pod)
        return Observed(
            host_ip=self.host_ip,
            start_time=rfc3339(self._taken.get(uid, self.clock())),
            waiting_message=message,
        )

    async def _sync_status(self, uid: str) -> None:
        pod = self.pods.get(uid)
        if pod is None or uid not in self.runtime.servers:
            return
        obs = self._observed(pod, ready=True)
        if obs is not None:
            await self._write_status(pod, obs)

    async def _write_status(self, pod: Obj, obs: Observed) -> None:
        body = status_patch(pod, desired_status(pod, obs, rfc3339(self.clock())))
        if body is None:
            return
        m = pod["metadata"]
        try:
            updated = await self.client.patch(
                f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}/status", body
            )
        except ApiError as e:
            if e.status in (404, 409):
                return  # gone, or another pod by that name now: nothing to report
            raise
        self.metrics.status_writes.inc()
        uid = _uid(pod)
        # Until the watch brings our own write back, reconciles compare against it.
        if _uid(updated) == uid and _newer(updated, self.pods.get(uid)):
            self.pods[uid] = updated

    # ---- events ------------------------------------------------------------------------------

    async def _post_event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Best effort; a repeat of the same event bumps its count, as the kubelet's recorder
        aggregates them."""
        m = pod["metadata"]
        ns = m["namespace"]
        key = (_uid(pod), reason, message)
        now = rfc3339(self.clock())
        try:
            seen = self._events.get(key)
            if seen is not None:
                name, count = seen
                await self.client.patch(
                    f"/api/v1/namespaces/{ns}/events/{name}",
                    {"count": count + 1, "lastTimestamp": now},
                )
                self._events[key] = (name, count + 1)
                return
            body = event(
                pod, type_=type_, reason=reason, message=message, node=self.node_name, now=now
            )
            created = await self.client.create(f"/api/v1/namespaces/{ns}/events", body)
            self._events[key] = (str(created["metadata"]["name"]), 1)
        except (ApiError, aiohttp.ClientError, OSError, KeyError) as e:
            log.debug("event %s for %s/%s not posted: %s", reason, ns, m["name"], e)
