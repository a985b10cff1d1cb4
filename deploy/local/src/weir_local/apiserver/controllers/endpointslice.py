"""The EndpointSlice controller: keeps each selector Service's slices equal to `plan_slices`.

Level-triggered and incremental. Store events only mark Service keys dirty: a Service change
marks that Service; a pod change marks the Services of its namespace whose selector matches
the pod's old or new labels (a per-namespace index of parsed selectors, so nothing scans all
Services); a node's zone change marks every Service; a change to a managed slice marks its
Service (repairing edits by others). The worker re-reads current state for each dirty key and
writes only differences, through the API operations like any client.
"""

from __future__ import annotations

import asyncio
import logging

from weir.labels import LabelSelector

from ..errors import StatusError
from ..objmeta import labels
from ..operations import Api
from ..store import DELETED, WatchEvent
from .slices import SERVICE_NAME_LABEL, ZONE_LABEL, is_managed, plan_slices

log = logging.getLogger(__name__)

SliceKey = tuple[str, str]  # (namespace, service name)


def service_selector(svc: dict[str, object]) -> LabelSelector | None:
    """The Service's selector as a LabelSelector; None when it selects nothing by design
    (no selector, or ExternalName)."""
    spec = svc.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return None
    sel = spec.get("selector")
    if not isinstance(sel, dict) or not sel:
        return None
    return LabelSelector(match_labels={str(k): str(v) for k, v in sel.items()})


class EndpointSliceController:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._slices = api.resources.by_key("endpointslices.discovery.k8s.io")
        self._selectors: dict[str, dict[str, LabelSelector]] = {}
        self._dirty: set[SliceKey] = set()
        self._wake = asyncio.Event()
        # Names of the pods each Service selects, kept from pod events once a sync has
        # computed them, so a sync reads its pods instead of scanning the namespace.
        self._members: dict[SliceKey, set[str]] = {}
        self.syncs = 0  # for tests and debugging
        self._writing = False
        api.store.add_listener(self.on_event)

    # ---- event side: cheap, synchronous ------------------------------------------------------

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource == "services":
            sel = None if ev.type == DELETED else service_selector(ev.entry.obj)
            ns_index = self._selectors.setdefault(ev.namespace, {})
            key = (ev.namespace, ev.name)
            if ns_index.get(ev.name) != sel:
                self._members.pop(key, None)  # recomputed by the next sync
            if sel is None:
                ns_index.pop(ev.name, None)
            else:
                ns_index[ev.name] = sel
            self._mark(key)
        elif ev.resource == "pods":
            index = self._selectors.get(ev.namespace)
            if not index:
                return
            new_labels = None if ev.type == DELETED else labels(ev.entry.obj)
            old_labels = labels(ev.old.obj) if ev.old is not None else None
            for name, sel in index.items():
                now = new_labels is not None and sel.matches(new_labels)
                before = old_labels is not None and sel.matches(old_labels)
                if not (now or before):
                    continue
                key = (ev.namespace, name)
                members = self._members.get(key)
                if members is not None:
                    if now:
                        members.add(ev.name)
                    else:
                        members.discard(ev.name)
                self._mark(key)
        elif ev.resource == "nodes":
            old_zone = labels(ev.old.obj).get(ZONE_LABEL) if ev.old is not None else None
            if labels(ev.entry.obj).get(ZONE_LABEL) != old_zone:
                for ns, index in self._selectors.items():
                    for name in index:
                        self._mark((ns, name))
        elif ev.resource == self._slices.key and not self._writing:
            # Our own writes (made while `_writing`) need no re-check.
            obj = ev.entry.obj
            if is_managed(obj):
                svc = labels(obj).get(SERVICE_NAME_LABEL)
                if svc:
                    self._mark((ev.namespace, svc))

    def _mark(self, key: SliceKey) -> None:
        self._dirty.add(key)
        self._wake.set()

    # ---- worker ------------------------------------------------------------------------------

    def resync_all(self) -> None:
        """Index every Service and mark each (and each managed slice's Service) dirty."""
        store = self.api.store
        self._selectors.clear()
        self._members.clear()
        for e in store.entries("services"):
            m = e.obj["metadata"]
            sel = service_selector(e.obj)
            if sel is not None:
                self._selectors.setdefault(m["namespace"], {})[m["name"]] = sel
            self._dirty.add((m["namespace"], m["name"]))
        for e in store.entries(self._slices.key):
            if is_managed(e.obj):
                svc = labels(e.obj).get(SERVICE_NAME_LABEL)
                if svc:
                    self._dirty.add((e.obj["metadata"]["namespace"], svc))
        self._wake.set()

    async def run(self) -> None:
        self.resync_all()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                batch = sorted(self._dirty)
                self._dirty.clear()
                for key in batch:
                    try:
                        self.sync(*key)
                    except StatusError as e:
                        # A conflict or a vanished object: the next event or pass repairs it.
                        log.debug("endpointslice sync %s/%s: %s", key[0], key[1], e.message)
                        if e.code not in (403, 404):  # terminating/missing namespace: no retry
                            self._dirty.add(key)
                    await asyncio.sleep(0)
                if self._dirty:
                    await asyncio.sleep(0.05)

    def sync(self, namespace: str, name: str) -> None:
        """Make the slices of one Service right (idempotent)."""
        self.syncs += 1
        self._writing = True
        try:
            self._sync(namespace, name)
        finally:
            self._writing = False

    def _sync(self, namespace: str, name: str) -> None:
        api, store = self.api, self.api.store
        svc_entry = store.get("services", namespace, name)
        existing = [
            e.obj for e in store.entries(self._slices.key, namespace) if is_managed(e.obj, name)
        ]
        sel = service_selector(svc_entry.obj) if svc_entry is not None else None
        if svc_entry is None or sel is None or svc_entry.obj["metadata"].get("deletionTimestamp"):
            self._members.pop((namespace, name), None)
            for s in existing:
                self._delete(namespace, s["metadata"]["name"])
            return
        members = self._members.get((namespace, name))
        if members is None:
            members = {
                e.obj["metadata"]["name"]
                for e in store.entries("pods", namespace)
                if sel.matches(labels(e.obj))
            }
            self._members[(namespace, name)] = members
        pods = []
        for pod_name in members:
            entry = store.get("pods", namespace, pod_name)
            if entry is not None:
                pods.append(entry.obj)
        zones: dict[str, str] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in zones:
                n = store.get("nodes", "", node)
                zone = labels(n.obj).get(ZONE_LABEL) if n is not None else None
                if zone:
                    zones[node] = zone
        plan = plan_slices(svc_entry.obj, pods, zones, existing)
        for obj in plan.update:
            api.update(
                self._slices, namespace, obj["metadata"]["name"], obj, field_validation="Ignore"
            )
        for obj in plan.create:
            api.create(self._slices, namespace, obj, field_validation="Ignore")
        for slice_name in plan.delete:
            self._delete(namespace, slice_name)

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.api.delete(self._slices, namespace, name)
        except StatusError as e:
            if e.code != 404:
                raise
