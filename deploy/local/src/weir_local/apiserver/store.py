"""In-memory object store: objects, the global resourceVersion, event history and watchers.

This is the local stand-in for etcd plus the kube-apiserver watch cache:

- every mutation takes the next value of one global counter as its resourceVersion (etcd's
  revision), is written through to persistence, appended to a bounded event history and
  offered to the matching watchers;
- stored object dicts are never mutated after a commit (callers build new dicts), so readers,
  history and watchers share them without copies; each carries its JSON bytes, serialized once;
- a watch from a resourceVersion older than the retained history fails with 410 Expired;
- selector transitions follow the watch cache: an object that stops matching a watcher's
  selector is delivered as DELETED (old content, new resourceVersion), one that starts
  matching as ADDED;
- a watcher has a bounded queue; a writer never waits for it, and a watcher that falls
  too far behind is closed (its client re-watches from its last resourceVersion).

Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .errors import StatusError, gone

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

Predicate = Callable[[dict[str, Any]], bool]


class Entry:
    """A stored version of one object: the dict (read-only by convention), its RV and JSON."""

    __slots__ = ("obj", "raw", "rv")

    def __init__(self, obj: dict[str, Any], rv: int, raw: bytes | None = None) -> None:
        self.obj = obj
        self.rv = rv
        self.raw = raw if raw is not None else orjson.dumps(obj)


@dataclass(slots=True, eq=False)
class WatchEvent:
    """One committed change. `entry` is the new version (for DELETED: last state, new RV)."""

    rv: int
    type: str
    resource: str
    namespace: str
    name: str
    entry: Entry
    old: Entry | None
    _old_at_rv: bytes | None = None

    def old_raw_at_event_rv(self) -> bytes:
        """The previous content stamped with this event's RV (a selector-transition DELETED)."""
        if self._old_at_rv is None:
            assert self.old is not None
            old = self.old.obj
            meta = dict(old.get("metadata") or {})
            meta["resourceVersion"] = str(self.rv)
            self._old_at_rv = orjson.dumps({**old, "metadata": meta})
        return self._old_at_rv


class Persistence(Protocol):
    def put(self, resource: str, namespace: str, name: str, rv: int, raw: bytes) -> None: ...

    def delete(self, resource: str, namespace: str, name: str, rv: int) -> None: ...


# A watcher's view of one event: the type it sees, the event, and whether it gets the old
# content (selector-transition DELETED) instead of the new one.
Delivery = tuple[str, WatchEvent, bool]


class Watcher:
    """One open watch: a bounded queue of deliveries and a wake-up event for its stream."""

    def __init__(
        self,
        resource: str,
        namespace: str | None,
        predicate: Predicate | None,
        limit: int,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.predicate = predicate
        self.limit = limit
        self.queue: deque[Delivery] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.close_reason = ""
        # Set by the store for a watch that resumes from history: events to send first.
        self.backlog: list[Delivery] = []
        # Set by the store for an RV "0"/unset watch: current objects to send as ADDED first.
        self.initial: list[Entry] = []
        # The store's resourceVersion when the watch was registered.
        self.start_rv = 0

    def deliver_for(self, ev: WatchEvent) -> Delivery | None:
        """What this watcher sees of `ev`, if anything (the watch cache's rules)."""
        pred = self.predicate
        if pred is None:
            return (ev.type, ev, False)
        cur = ev.type != DELETED and pred(ev.entry.obj)
        was = ev.old is not None and pred(ev.old.obj)
        if cur and was:
            return (MODIFIED, ev, False)
        if cur:
            return (ADDED, ev, False)
        if was:
            # DELETED carries the previous content; for a real delete `entry` is that already.
            return (DELETED, ev, ev.type != DELETED)
        return None

    def offer(self, ev: WatchEvent) -> None:
        if self.closed:
            return
        d = self.deliver_for(ev)
        if d is None:
            return
        if len(self.queue) >= self.limit:
            self.close("watcher fell too far behind")
            return
        self.queue.append(d)
        self.wake.set()

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.wake.set()


@dataclass
class _Snapshot:
    rv: int
    entries: list[Entry] = field(default_factory=list)


def _sort_key(e: Entry) -> tuple[str, str]:
    m = e.obj["metadata"]
    return (m.get("namespace", ""), m["name"])


class Store:
    """Objects by resource key, namespace and name; see the module docstring for semantics."""

    def __init__(
        self,
        *,
        history_size: int = 50_000,
        watch_queue_limit: int = 10_000,
        persistence: Persistence | None = None,
        snapshot_cache_size: int = 8,
    ) -> None:
        self.rv = 0
        self._objects: dict[str, dict[str, dict[str, Entry]]] = {}
        self._history: deque[WatchEvent] = deque()
        self._history_size = history_size
        # Every event with rv > history_start_rv is in the history.
        self.history_start_rv = 0
        self._watchers: dict[str, set[Watcher]] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._persistence = persistence
        self.watch_queue_limit = watch_queue_limit
        self._snapshots: OrderedDict[tuple[str, str | None, int], _Snapshot] = OrderedDict()
        self._snapshot_cache_size = snapshot_cache_size

    # ---- loading -----------------------------------------------------------------------------

    def load(self, rows: Iterable[tuple[str, str, str, int, bytes]], rv: int) -> None:
        """Restore persisted objects; the history starts empty at `rv` (a fresh watch cache)."""
        top = rv
        for resource, namespace, name, obj_rv, raw in rows:
            entry = Entry(orjson.loads(raw), obj_rv, raw)
            self._objects.setdefault(resource, {}).setdefault(namespace, {})[name] = entry
            top = max(top, obj_rv)
        self.rv = top
        self.history_start_rv = top

    # ---- reads -------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Entry | None:
        ns = self._objects.get(resource, {}).get(namespace)
        return ns.get(name) if ns else None

    def entries(self, resource: str, namespace: str | None = None) -> Iterator[Entry]:
        """Current entries of a resource, in one namespace or all (unordered)."""
        by_ns = self._objects.get(resource, {})
        if namespace is not None:
            yield from list(by_ns.get(namespace, {}).values())
            return
        for objs in list(by_ns.values()):
            yield from list(objs.values())

    def count(self, resource: str, namespace: str | None = None) -> int:
        by_ns = self._objects.get(resource, {})
        if namespace is not None:
            return len(by_ns.get(namespace, {}))
        return sum(len(v) for v in by_ns.values())

    def namespaces_of(self, resource: str) -> list[str]:
        return [ns for ns, objs in self._objects.get(resource, {}).items() if objs]

    def sorted_entries(self, resource: str, namespace: str | None) -> list[Entry]:
        return sorted(self.entries(resource, namespace), key=_sort_key)

    # ---- writes ------------------------------------------------------------------------------

    def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> Entry:
        """Store a new object (`obj` becomes the store's; its resourceVersion is set here)."""
        return self._commit(ADDED, resource, namespace, name, obj, None)

    def update(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], old: Entry
    ) -> Entry:
        return self._commit(MODIFIED, resource, namespace, name, obj, old)

    def delete(self, resource: str, namespace: str, name: str, old: Entry) -> Entry:
        meta = dict(old.obj.get("metadata") or {})
        final = {**old.obj, "metadata": meta}
        return self._commit(DELETED, resource, namespace, name, final, old)

    def _commit(
        self,
        kind: str,
        resource: str,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        old: Entry | None,
    ) -> Entry:
        rv = self.rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        entry = Entry(obj, rv)
        by_ns = self._objects.setdefault(resource, {})
        if kind == DELETED:
            objs = by_ns.get(namespace)
            if objs is not None:
                objs.pop(name, None)
                if not objs:
                    del by_ns[namespace]
            if self._persistence is not None:
                self._persistence.delete(resource, namespace, name, rv)
        else:
            by_ns.setdefault(namespace, {})[name] = entry
            if self._persistence is not None:
                self._persistence.put(resource, namespace, name, rv, entry.raw)
        self.rv = rv
        ev = WatchEvent(rv, kind, resource, namespace, name, entry, old)
        self._record(ev)
        return entry

    def _record(self, ev: WatchEvent) -> None:
        history = self._history
        if self._history_size <= 0:
            self.history_start_rv = ev.rv
        else:
            if len(history) >= self._history_size:
                self.history_start_rv = history.popleft().rv
            history.append(ev)
        for w in self._watchers.get(ev.resource, ()):
            if w.namespace is None or w.namespace == ev.namespace:
                w.offer(ev)
        for listener in self._listeners:
            listener(ev)

    # ---- watch -------------------------------------------------------------------------------

    def add_listener(self, fn: Callable[[WatchEvent], None]) -> None:
        """In-process subscribers (controllers); called synchronously after every commit."""
        self._listeners.append(fn)

    def check_rv_available(self, rv: int) -> None:
        """Raise 410 unless every change after `rv` is still in the history."""
        if rv < self.history_start_rv:
            raise gone(f"too old resource version: {rv} ({self.history_start_rv})")

    def watch(
        self,
        resource: str,
        namespace: str | None,
        predicate: Predicate | None,
        since: int | None,
    ) -> Watcher:
        """Open a watch. `since=None`: current matching objects first (as ADDED), then changes.

        Registration and the initial state are taken in one synchronous step, so no change
        falls between them.
        """
        w = Watcher(resource, namespace, predicate, self.watch_queue_limit)
        if since is None:
            w.initial = [
                e
                for e in self.entries(resource, namespace)
                if predicate is None or predicate(e.obj)
            ]
        else:
            if since > self.rv:
                raise StatusError(
                    504,
                    "Timeout",
                    f"Timeout: Too large resource version: {since}, current: {self.rv}",
                    {
                        "causes": [
                            {
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version",
                            }
                        ]
                    },
                    {"Retry-After": "1"},
                )
            self.check_rv_available(since)
            backlog: list[Delivery] = []
            for ev in reversed(self._history):
                if ev.rv <= since:
                    break
                if ev.resource != resource or (namespace is not None and ev.namespace != namespace):
                    continue
                d = w.deliver_for(ev)
                if d is not None:
                    backlog.append(d)
            backlog.reverse()
            w.backlog = backlog
        w.start_rv = self.rv
        self._watchers.setdefault(resource, set()).add(w)
        return w

    def stop_watch(self, w: Watcher) -> None:
        w.close("stopped")
        ws = self._watchers.get(w.resource)
        if ws is not None:
            ws.discard(w)

    def close_all_watchers(self, reason: str) -> int:
        n = 0
        for ws in self._watchers.values():
            for w in list(ws):
                w.close(reason)
                n += 1
            ws.clear()
        return n

    def watcher_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    # ---- consistent snapshots (continue tokens, resourceVersionMatch=Exact) -----------------

    def snapshot(self, resource: str, namespace: str | None, rv: int) -> list[Entry]:
        """The sorted entries as of `rv` (410 when the history no longer reaches back to it)."""
        self.check_rv_available(rv)
        key = (resource, namespace, rv)
        snap = self._snapshots.get(key)
        if snap is not None:
            self._snapshots.move_to_end(key)
            return snap.entries
        current: dict[tuple[str, str], Entry] = {
            _sort_key(e): e for e in self.entries(resource, namespace)
        }
        if rv < self.rv:
            # Undo the changes after rv, newest first.
            for ev in reversed(self._history):
                if ev.rv <= rv:
                    break
                if ev.resource != resource or (namespace is not None and ev.namespace != namespace):
                    continue
                k = (ev.namespace, ev.name)
                if ev.type == ADDED:
                    current.pop(k, None)
                else:
                    assert ev.old is not None
                    current[k] = ev.old
        entries = [current[k] for k in sorted(current)]
        self._snapshots[key] = _Snapshot(rv, entries)
        while len(self._snapshots) > self._snapshot_cache_size:
            self._snapshots.popitem(last=False)
        return entries

    def compact(self) -> None:
        """Forget the event history: watches and continue tokens from before now get 410."""
        self._history.clear()
        self.history_start_rv = self.rv
        self._snapshots.clear()
