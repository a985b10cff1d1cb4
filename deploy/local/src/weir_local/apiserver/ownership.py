"""Owner references: which objects depend on which, for garbage collection.

Upstream, the garbage collector deletes an object once none of its owners exists any more
(background propagation). Here the index is kept by a store listener (cheap: it only records
uids) and the API operations delete the orphaned dependents right after the owner goes, in
the same request — so a deleted Service takes its EndpointSlices with it at once.
"""

from __future__ import annotations

from typing import Any

from .store import DELETED, WatchEvent

Key = tuple[str, str, str]  # (resource key, namespace, name)


def owner_uids(obj: dict[str, Any]) -> set[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return {str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")}


class OwnerIndex:
    """Live uids, and the dependents of each owner uid."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self._dependents: dict[str, set[Key]] = {}

    def on_event(self, ev: WatchEvent) -> None:
        key = (ev.resource, ev.namespace, ev.name)
        old = ev.old.obj if ev.old is not None else None
        new = ev.entry.obj
        uid = (new.get("metadata") or {}).get("uid")
        old_owners = owner_uids(old) if old is not None else set()
        new_owners = set() if ev.type == DELETED else owner_uids(new)
        for owner in old_owners - new_owners:
            deps = self._dependents.get(owner)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[owner]
        for owner in new_owners - old_owners:
            self._dependents.setdefault(owner, set()).add(key)
        if uid:
            if ev.type == DELETED:
                self.live.discard(uid)
            else:
                self.live.add(uid)

    def dependents(self, owner_uid: str) -> list[Key]:
        return sorted(self._dependents.get(owner_uid, ()))
