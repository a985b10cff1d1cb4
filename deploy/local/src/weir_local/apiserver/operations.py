"""The verbs of the API (get, list, watch, create, update, patch, delete, ...) without HTTP.

Each write runs the kube-apiserver order: decode checks (kind, apiVersion, namespace) →
schema pruning and fieldValidation → name generation → strategy + defaulting → validation
(422) → allocation → store. Writes are synchronous on the event loop, so each one is atomic
with respect to every other request and to the controllers.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import defaults, patch, schema, selectors, validation
from .errors import (
    FieldError,
    StatusError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    forbidden_status,
    gone,
    not_found,
    required,
    unprocessable,
)
from .objmeta import deep_copy, format_epoch, generate_name, labels, parse_time
from .ownership import OwnerIndex, owner_uids
from .registry import NAMESPACE_FINALIZER, AllocationTxn, Strategy
from .resources import ResourceInfo, ResourceRegistry
from .store import Entry, Predicate, Store, Watcher

Obj = dict[str, Any]

CONFLICT_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
# Metadata the server owns: a client's values are ignored on update.
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
_GENERATE_NAME_TRIES = 8


@dataclass
class WriteResult:
    obj: Obj
    created: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    entries: list[Entry]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass(frozen=True)
class ListQuery:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


class Api:
    def __init__(
        self,
        store: Store,
        resources: ResourceRegistry,
        strategies: dict[str, Strategy],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.resources = resources
        self._strategies = strategies
        self._default_strategy = Strategy()
        self.clock = clock
        self.owners = OwnerIndex()
        store.add_listener(self.owners.on_event)

    def strategy(self, res: ResourceInfo) -> Strategy:
        return self._strategies.get(res.key, self._default_strategy)

    # ---- reads -------------------------------------------------------------------------------

    def get(self, res: ResourceInfo, namespace: str, name: str) -> Entry:
        entry = self.store.get(res.key, namespace, name)
        if entry is None:
            raise not_found(res.plural, res.group, name)
        return entry

    def predicate(self, res: ResourceInfo, label_sel: str, field_sel: str) -> Predicate | None:
        """A matcher for the selectors, None when both are empty (400 when unparsable)."""
        try:
            ls = selectors.parse_label_selector(label_sel) if label_sel else None
            fs = selectors.parse_field_selector(field_sel, res.kind) if field_sel else None
        except selectors.SelectorError as e:
            raise bad_request(str(e)) from None
        if ls is not None and ls.is_empty():
            ls = None
        if fs is not None and not fs.terms:
            fs = None
        if ls is None and fs is None:
            return None
        if fs is None:
            assert ls is not None
            lsel = ls
            return lambda obj: lsel.matches(labels(obj))
        if ls is None:
            return fs.matches
        lsel2, fsel = ls, fs
        return lambda obj: lsel2.matches(labels(obj)) and fsel.matches(obj)

    def list_entries(self, res: ResourceInfo, namespace: str | None, q: ListQuery) -> ListResult:
        pred = self.predicate(res, q.label_selector, q.field_selector)
        store = self.store
        start_after: tuple[str, str] | None = None
        if q.continue_token:
            rv, start_after = _decode_continue(q.continue_token)
            try:
                entries = store.snapshot(res.key, namespace, rv)
            except StatusError as exc:
                if exc.code != 410:
                    raise
                err = gone(CONTINUE_EXPIRED)
                err.details = None
                raise err from None
            list_rv = rv
        elif q.resource_version_match == "Exact" and q.resource_version:
            list_rv = _parse_rv(q.resource_version)
            if list_rv > store.rv:
                raise _too_large(list_rv, store.rv)
            entries = store.snapshot(res.key, namespace, list_rv)
        elif q.resource_version not in ("", "0") and _parse_rv(q.resource_version) > store.rv:
            # "Not older than" a version the server has not reached (a wiped state dir).
            raise _too_large(_parse_rv(q.resource_version), store.rv)
        elif q.limit > 0:
            list_rv = store.rv
            entries = store.snapshot(res.key, namespace, list_rv)
        else:
            list_rv = store.rv
            fast = self._fast_entries(res, namespace, q)
            entries = fast if fast is not None else store.sorted_entries(res.key, namespace)
        start = 0
        if start_after is not None:
            start = bisect.bisect_right(entries, start_after, key=_entry_key)
        out: list[Entry] = []
        limit = q.limit if q.limit > 0 else None
        i = start
        n = len(entries)
        while i < n:
            e = entries[i]
            i += 1
            if pred is None or pred(e.obj):
                out.append(e)
                if limit is not None and len(out) >= limit:
                    break
        token = ""
        remaining: int | None = None
        if limit is not None and len(out) >= limit and i < n:
            if pred is None:
                remaining = n - i
            else:
                more = any(pred(e.obj) for e in entries[i:])
                if not more:
                    return ListResult(out, list_rv)
            token = _encode_continue(list_rv, _entry_key(out[-1]))
        return ListResult(out, list_rv, token, remaining)

    def _fast_entries(
        self, res: ResourceInfo, namespace: str | None, q: ListQuery
    ) -> list[Entry] | None:
        """`metadata.name=x` in one namespace (kubectl wait/delete): a lookup, not a scan."""
        if not q.field_selector or (namespace is None and res.namespaced):
            return None
        try:
            terms = selectors.parse_field_selector(q.field_selector, res.kind).terms
        except selectors.SelectorError:
            return None
        if len(terms) != 1 or terms[0][:2] != ("metadata.name", "="):
            return None
        entry = self.store.get(res.key, namespace or "", terms[0][2])
        return [entry] if entry is not None else []

    def watch(
        self,
        res: ResourceInfo,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
        send_initial_events: bool | None = None,
        allow_bookmarks: bool = False,
    ) -> Watcher:
        pred = self.predicate(res, label_selector, field_selector)
        if send_initial_events is not None:
            errs: list[FieldError] = []
            if resource_version_match != "NotOlderThan":
                errs.append(
                    forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )
                )
            if send_initial_events and not allow_bookmarks:
                errs.append(
                    forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    )
                )
            if errs:
                raise unprocessable("ListOptions", "meta.k8s.io", "", errs)
        if send_initial_events:
            since: int | None = None
            if resource_version not in ("", "0"):
                rv = _parse_rv(resource_version)
                if rv > self.store.rv:
                    raise _too_large(rv, self.store.rv)
        elif resource_version in ("", "0") and send_initial_events is None:
            since = None
        elif resource_version in ("", "0"):
            since = self.store.rv
        else:
            since = _parse_rv(resource_version)
        return self.store.watch(res.key, namespace, pred, since)

    # ---- writes ------------------------------------------------------------------------------

    def create(
        self,
        res: ResourceInfo,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        obj = self._decoded(res, namespace, body)
        warnings = self._prune(res, obj, field_validation, decode_prefix=True)
        meta = obj["metadata"]
        if res.namespaced:
            self._check_namespace_writable(res, namespace, meta.get("name") or "")
        if meta.get("resourceVersion"):
            raise StatusError(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be "
                "created",
            )
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(k, None)
        meta.pop("selfLink", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(res, namespace, meta["generateName"])
        if not meta.get("name"):
            raise unprocessable(
                res.kind,
                res.group,
                "",
                [required("metadata.name", "name or generateName is required")],
            )
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_epoch(self.clock())
        meta["generation"] = 1
        strategy = self.strategy(res)
        if res.reset_status_on_create:
            obj.pop("status", None)
        strategy.prepare_create(obj)
        if res.schema:
            defaults.apply_defaults(res.kind, obj)
        strategy.after_defaults_create(obj)
        errs = validation.validate_create(res.kind, obj) if res.schema else []
        if errs:
            raise unprocessable(res.kind, res.group, meta["name"], errs)
        if self.store.get(res.key, namespace, meta["name"]) is not None:
            raise already_exists(res.plural, res.group, meta["name"])
        txn = AllocationTxn()
        errs = strategy.allocate_create(obj, txn)
        if errs:
            txn.rollback()
            raise unprocessable(res.kind, res.group, meta["name"], errs)
        if dry_run:
            txn.rollback()
            return WriteResult(obj, created=True, warnings=warnings)
        entry = self.store.create(res.key, namespace, meta["name"], obj)
        txn.commit()
        return WriteResult(entry.obj, created=True, warnings=warnings)

    def update(
        self,
        res: ResourceInfo,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        obj = self._decoded(res, namespace, body)
        body_name = obj["metadata"].get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        warnings = self._prune(res, obj, field_validation, decode_prefix=True)
        old = self.store.get(res.key, namespace, name)
        if old is None:
            if res.allow_create_on_update and not subresource:
                obj["metadata"].pop("resourceVersion", None)
                result = self.create(
                    res, namespace, obj, dry_run=dry_run, field_validation="Ignore"
                )
                result.warnings = warnings + result.warnings
                return result
            raise not_found(res.plural, res.group, name)
        return self._update(res, old, obj, subresource, dry_run, warnings)

    def patch(
        self,
        res: ResourceInfo,
        namespace: str,
        name: str,
        patch_type: str,
        body: bytes,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        old = self.get(res, namespace, name)
        try:
            ops = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError as e:
            raise bad_request(f"error decoding patch: {e}") from None
        if ops is None:
            raise bad_request("the body of the request was empty")
        original = deep_copy(old.obj)
        try:
            if patch_type == "merge":
                new = patch.json_merge_patch(original, ops)
            elif patch_type == "strategic":
                if not res.schema:
                    raise StatusError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media "
                        "types include: application/json-patch+json, "
                        "application/merge-patch+json",
                    )
                if not isinstance(ops, dict):
                    raise bad_request("the strategic merge patch is not a JSON object")
                new = patch.strategic_merge_patch(original, ops, res.kind)
            elif patch_type == "json":
                new = patch.json_patch(original, ops)
            else:  # pragma: no cover - the HTTP layer only passes the three above
                raise bad_request(f"unsupported patch type {patch_type}")
        except patch.PatchError as e:
            raise _patch_error(e) from None
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        new["apiVersion"] = res.api_version
        new["kind"] = res.kind
        if new["metadata"].get("name") != name:
            raise bad_request(
                f"the name of the object ({new['metadata'].get('name')}) does not match the "
                f"name on the URL ({name})"
            )
        warnings = self._prune(res, new, field_validation, decode_prefix=False)
        return self._update(res, old, new, subresource, dry_run, warnings)

    def _update(
        self,
        res: ResourceInfo,
        old: Entry,
        new: Obj,
        subresource: str,
        dry_run: bool,
        warnings: list[str],
    ) -> WriteResult:
        meta = new["metadata"]
        ometa = old.obj["metadata"]
        name = ometa["name"]
        namespace = ometa.get("namespace", "")
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != str(old.rv):
            raise conflict(res.plural, res.group, name, CONFLICT_MODIFIED)
        for k in _SYSTEM_META:
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        if res.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta.pop("selfLink", None)
        meta["generation"] = ometa.get("generation", 1)
        strategy = self.strategy(res)
        if subresource == "status":
            status = new.get("status")
            kept = {k: deep_copy(v) for k, v in old.obj.items() if k not in ("status", "metadata")}
            for k in list(new):
                if k not in ("status", "metadata", "apiVersion", "kind"):
                    del new[k]
            new.update(kept)
            if status is None:
                new.pop("status", None)
            # Status writes keep the old metadata except labels and annotations.
            for k, v in ometa.items():
                if k not in ("labels", "annotations", "resourceVersion"):
                    meta[k] = deep_copy(v)
            for k in list(meta):
                if k not in ometa and k not in ("labels", "annotations", "resourceVersion"):
                    del meta[k]
            strategy.prepare_status_update(new, old.obj)
        else:
            if res.status_subresource:
                if "status" in old.obj:
                    new["status"] = deep_copy(old.obj["status"])
                else:
                    new.pop("status", None)
            strategy.prepare_update(new, old.obj)
        errs: list[FieldError] = []
        if res.schema:
            defaults.apply_defaults(res.kind, new)
            check = (
                validation.validate_status_update
                if subresource == "status"
                else validation.validate_update
            )
            errs = check(res.kind, new, old.obj)
        if errs:
            raise unprocessable(res.kind, res.group, name, errs)
        if _spec_changed(new, old.obj):
            meta["generation"] = ometa.get("generation", 1) + 1
        meta["resourceVersion"] = str(old.rv)
        if new == old.obj:
            return WriteResult(old.obj, warnings=warnings)  # no-op: no new resourceVersion
        txn = AllocationTxn()
        errs = strategy.allocate_update(new, old.obj, txn)
        if errs:
            txn.rollback()
            raise unprocessable(res.kind, res.group, name, errs)
        if dry_run:
            txn.rollback()
            return WriteResult(new, warnings=warnings)
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not (new.get("spec") or {}).get("finalizers")  # a namespace's own finalizers
            and meta.get("deletionGracePeriodSeconds") in (0, None)
        ):
            # The last finalizer went away from an object being deleted: it is gone now.
            txn.commit()
            entry = self._remove(res, old)
            return WriteResult(entry.obj, warnings=warnings)
        entry = self.store.update(res.key, namespace, name, new, old)
        txn.commit()
        return WriteResult(entry.obj, warnings=warnings)

    def bind(self, namespace: str, name: str, body: Any) -> Obj:
        """POST pods/{name}/binding: assign the pod to a node (409 if it already has one)."""
        pods = self.resources.by_key("pods")
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a Binding object")
        if body.get("kind") not in (None, "Binding"):
            raise bad_request(
                f"the kind in the data ({body.get('kind')}) does not match the expected kind "
                "(Binding)"
            )
        target = body.get("target") or {}
        node = target.get("name") if isinstance(target, dict) else None
        if not node:
            raise unprocessable("Binding", "", name, [required("target.name", "")])
        if target.get("kind") not in (None, "", "Node"):
            raise unprocessable(
                "Binding", "", name, [forbidden("target.kind", "must be empty or Node")]
            )
        old = self.get(pods, namespace, name)
        ospec = old.obj.get("spec") or {}
        if old.obj["metadata"].get("deletionTimestamp"):
            raise conflict(
                "pods/binding",
                "",
                name,
                f"pod {name} is being deleted, cannot be assigned to a host",
            )
        if ospec.get("nodeName"):
            raise conflict(
                "pods/binding",
                "",
                name,
                f'pod {name} is already assigned to node "{ospec["nodeName"]}"',
            )
        new = deep_copy(old.obj)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": format_epoch(self.clock()),
            }
        )
        status["conditions"] = conds
        self.store.update(pods.key, namespace, name, new, old)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    # ---- delete ------------------------------------------------------------------------------

    def delete(
        self,
        res: ResourceInfo,
        namespace: str,
        name: str,
        options: Obj | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE: returns the object (still present while graceful/finalizing) or a Status."""
        options = options or {}
        old = self.get(res, namespace, name)
        _check_preconditions(res, old, options.get("preconditions"))
        requested = options.get("gracePeriodSeconds")
        if requested is not None and not isinstance(requested, int):
            raise bad_request("gracePeriodSeconds must be an integer")
        if res.key == "namespaces":
            return self._delete_namespace(res, old, dry_run)
        meta = old.obj["metadata"]
        now = self.clock()
        strategy = self.strategy(res)
        deleting = meta.get("deletionTimestamp")
        dgs = meta.get("deletionGracePeriodSeconds")
        if deleting and dgs:
            if requested is None or requested >= dgs:
                return _success_status(res, meta)  # graceful deletion already pending
            started = (parse_time(deleting) or now) - dgs
            if requested > 0:
                return self._mark_deleting(res, old, started + requested, requested, dry_run)
            period = 0
        elif deleting:
            period = 0
        else:
            period = strategy.grace_period(old.obj, requested)
            if period > 0:
                return self._mark_deleting(res, old, now + period, period, dry_run)
        if meta.get("finalizers"):
            if deleting and dgs == 0:
                return old.obj
            return self._mark_deleting(
                res, old, parse_time(deleting) if deleting else now, period, dry_run
            )
        if dry_run:
            return old.obj if res.return_deleted_object else _success_status(res, meta)
        entry = self._remove(res, old, options)
        return entry.obj if res.return_deleted_object else _success_status(res, meta)

    def _mark_deleting(
        self, res: ResourceInfo, old: Entry, when: float | None, period: int, dry_run: bool
    ) -> Obj:
        new = dict(old.obj)
        meta = dict(old.obj["metadata"])
        meta["deletionTimestamp"] = format_epoch(when if when is not None else self.clock())
        meta["deletionGracePeriodSeconds"] = period
        new["metadata"] = meta
        if dry_run:
            return new
        ometa = old.obj["metadata"]
        return self.store.update(res.key, ometa.get("namespace", ""), ometa["name"], new, old).obj

    def _delete_namespace(self, res: ResourceInfo, old: Entry, dry_run: bool) -> Obj:
        meta = old.obj["metadata"]
        spec_finalizers = (old.obj.get("spec") or {}).get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if not spec_finalizers and not meta.get("finalizers"):
                if not dry_run:
                    self._remove(res, old)
                return _success_status(res, meta)
            raise conflict(
                res.plural,
                res.group,
                meta["name"],
                "The system is ensuring all content is removed from this namespace.  Upon "
                "completion, this namespace will automatically be purged by the system.",
            )
        new = dict(old.obj)
        nmeta = dict(meta)
        nmeta["deletionTimestamp"] = format_epoch(self.clock())
        nmeta["deletionGracePeriodSeconds"] = 0
        new["metadata"] = nmeta
        new["status"] = {**(old.obj.get("status") or {}), "phase": "Terminating"}
        if dry_run:
            return new
        if not spec_finalizers and not meta.get("finalizers"):
            self._remove(res, old)
            return _success_status(res, meta)
        return self.store.update(res.key, "", meta["name"], new, old).obj

    def finalize_namespace(self, name: str) -> None:
        """The namespace controller's last step: drop the `kubernetes` finalizer."""
        old = self.store.get("namespaces", "", name)
        if old is None:
            return
        finalizers = (old.obj.get("spec") or {}).get("finalizers") or []
        self.set_namespace_finalizers(name, [f for f in finalizers if f != NAMESPACE_FINALIZER])

    def set_namespace_finalizers(self, name: str, finalizers: list[str]) -> Obj:
        """PUT namespaces/{name}/finalize: replace spec.finalizers; a Terminating namespace
        left with no finalizers at all is gone."""
        res = self.resources.by_key("namespaces")
        old = self.get(res, "", name)
        spec = old.obj.get("spec") or {}
        entry = old
        if list(spec.get("finalizers") or []) != finalizers:
            new = dict(old.obj)
            new["spec"] = {**spec, "finalizers": finalizers}
            entry = self.store.update(res.key, "", name, new, old)
        meta = entry.obj["metadata"]
        if meta.get("deletionTimestamp") and not finalizers and not meta.get("finalizers"):
            return self._remove(res, entry).obj
        return entry.obj

    def _remove(self, res: ResourceInfo, old: Entry, options: Obj | None = None) -> Entry:
        """Take `old` out of the store, give back its allocations and collect what it owned."""
        meta = old.obj["metadata"]
        entry = self.store.delete(res.key, meta.get("namespace", ""), meta["name"], old)
        self.strategy(res).release(entry.obj)
        if (options or {}).get("propagationPolicy") != "Orphan":
            self._collect_dependents(str(meta.get("uid", "")))
        return entry

    def _collect_dependents(self, owner_uid: str) -> None:
        """Upstream's garbage collector (background propagation), done at once: delete the
        dependents of a removed owner that have no live owner left."""
        if not owner_uid:
            return
        for resource, namespace, name in self.owners.dependents(owner_uid):
            entry = self.store.get(resource, namespace, name)
            if entry is None or owner_uids(entry.obj) & self.owners.live:
                continue
            # Gone meanwhile, or held by a finalizer: it stays, as with the real GC.
            with contextlib.suppress(StatusError):
                self.delete(self.resources.by_key(resource), namespace, name)

    def delete_collection(
        self,
        res: ResourceInfo,
        namespace: str | None,
        q: ListQuery,
        options: Obj | None,
        *,
        dry_run: bool = False,
    ) -> list[Obj]:
        listed = self.list_entries(res, namespace, ListQuery(q.label_selector, q.field_selector))
        out: list[Obj] = []
        for e in listed.entries:
            m = e.obj["metadata"]
            try:
                result = self.delete(
                    res, m.get("namespace", ""), m["name"], options, dry_run=dry_run
                )
            except StatusError as err:
                if err.code == 404:
                    continue
                raise
            out.append(result if result.get("kind") != "Status" else e.obj)
        return out

    # ---- helpers -----------------------------------------------------------------------------

    def _decoded(self, res: ResourceInfo, namespace: str, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                "the body is not a JSON object"
            )
        obj: Obj = body
        api_version = obj.get("apiVersion")
        if api_version and api_version != res.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({res.api_version})"
            )
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
            )
        # A new dict with the type fields first, as the real server serializes them.
        obj = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise bad_request(
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                "metadata must be an object"
            )
        if res.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _prune(
        self, res: ResourceInfo, obj: Obj, field_validation: str, *, decode_prefix: bool
    ) -> list[str]:
        if not res.schema:
            return []
        result = schema.prune(res.kind, obj)
        prefix = (
            f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
            if decode_prefix
            else ""
        )
        if result.type_errors:
            raise bad_request(prefix + "; ".join(result.type_errors))
        if not result.unknown_fields or field_validation == "Ignore":
            return []
        msgs = [f'unknown field "{f}"' for f in result.unknown_fields]
        if field_validation == "Strict":
            raise bad_request(prefix + "strict decoding error: " + ", ".join(msgs))
        return msgs

    def _check_namespace_writable(self, res: ResourceInfo, namespace: str, name: str) -> None:
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if (ns.obj.get("status") or {}).get("phase") == "Terminating" or ns.obj["metadata"].get(
            "deletionTimestamp"
        ):
            raise forbidden_status(
                res.plural,
                res.group,
                name,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _generate_name(self, res: ResourceInfo, namespace: str, prefix: str) -> str:
        for _ in range(_GENERATE_NAME_TRIES):
            name = generate_name(prefix)
            if self.store.get(res.key, namespace, name) is None:
                return name
        return generate_name(prefix)


def _spec_changed(new: Obj, old: Obj) -> bool:
    if "spec" in new or "spec" in old:
        return new.get("spec") != old.get("spec")
    skip = ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in new.items() if k not in skip} != {
        k: v for k, v in old.items() if k not in skip
    }


def _success_status(res: ResourceInfo, meta: Obj) -> Obj:
    details: Obj = {"name": meta.get("name", ""), "kind": res.plural, "uid": meta.get("uid", "")}
    if res.group:
        details["group"] = res.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _check_preconditions(res: ResourceInfo, old: Entry, pre: Any) -> None:
    if not isinstance(pre, dict):
        return
    meta = old.obj["metadata"]
    name = meta["name"]
    uid = pre.get("uid")
    if uid and uid != meta.get("uid"):
        raise conflict(
            res.plural,
            res.group,
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}",  # noqa: E501
        )
    rv = pre.get("resourceVersion")
    if rv and rv != str(old.rv):
        raise conflict(
            res.plural,
            res.group,
            name,
            "Precondition failed: ResourceVersion in precondition: "
            f"{rv}, ResourceVersion in object meta: {old.rv}",
        )


def _patch_error(e: patch.PatchError) -> StatusError:
    reasons = {
        400: "BadRequest",
        409: "Conflict",
        413: "RequestEntityTooLarge",
        415: "UnsupportedMediaType",
        422: "Invalid",
    }
    return StatusError(e.code, reasons.get(e.code, "BadRequest"), str(e))


def _parse_rv(text: str) -> int:
    try:
        rv = int(text)
    except ValueError:
        raise bad_request(f'invalid resource version "{text}"') from None
    if rv < 0:
        raise bad_request(f'invalid resource version "{text}"')
    return rv


def _too_large(rv: int, current: int) -> StatusError:
    return StatusError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {rv}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ]
        },
        {"Retry-After": "1"},
    )


def _entry_key(e: Entry) -> tuple[str, str]:
    m = e.obj["metadata"]
    return (m.get("namespace", ""), m["name"])


def _encode_continue(rv: int, after: tuple[str, str]) -> str:
    payload = {"v": "meta.k8s.io/v1", "rv": rv, "start": f"{after[0]}/{after[1]}\x00"}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = orjson.loads(raw)
        rv = int(payload["rv"])
        start = str(payload["start"]).rstrip("\x00")
        ns, _, name = start.partition("/")
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None
    if rv <= 0:
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    return rv, (ns, name)
