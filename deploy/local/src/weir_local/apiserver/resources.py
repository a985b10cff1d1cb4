"""The kinds the local API server serves: one declaration each, read by every other module.

Adding a kind (for example one of Weir's own CRD-like kinds) is one more `ResourceInfo` in
`BUILTIN_RESOURCES` (or a `ResourceRegistry` built with extra entries): discovery, OpenAPI,
routing, storage and watch all follow from it. Per-kind behaviour that is more than data
(graceful deletion, allocation) lives in registry.py, keyed by `ResourceInfo.key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    kind: str  # the kind of the body it takes/returns ("Pod" for status, "Binding" for binding)
    group: str
    version: str
    verbs: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceInfo:
    """One served resource, with what discovery reports about it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    # Whether the main resource ignores status on update (it has a status subresource).
    status_subresource: bool = False
    # Whether create wipes the status a client sent (pods, services, namespaces do; nodes don't).
    reset_status_on_create: bool = False
    # PUT to a missing object creates it (events and endpointslices, as upstream allows).
    allow_create_on_update: bool = False
    # Immediate deletions answer with the deleted object instead of a Status (upstream services).
    return_deleted_object: bool = False
    # Built-in schema: pruning, defaulting, validation and strategic merge patch apply. False
    # makes a schemaless kind, like a CRD preserving unknown fields (Weir's own kinds can start
    # so and gain a schema in schema.py/validation.py later).
    schema: bool = True

    @property
    def key(self) -> str:
        """The group-qualified resource name, unique across groups: `pods`, `endpointslices.discovery.k8s.io`."""  # noqa: E501
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_version(self) -> str:
        """The discovery path part: `api/v1` or `apis/networking.k8s.io/v1`."""
        return f"apis/{self.group}/{self.version}" if self.group else f"api/{self.version}"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


def _status(kind: str, group: str = "", version: str = "v1") -> Subresource:
    return Subresource("status", kind, group, version, STATUS_VERBS)


BUILTIN_RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        subresources=(
            _status("Namespace"),
            Subresource("finalize", "Namespace", "", "v1", ("update",)),
        ),
        status_subresource=True,
        reset_status_on_create=True,
    ),
    ResourceInfo(
        group="",
        version="v1",
        kind="Node",
        plural="nodes",
        singular="node",
        namespaced=False,
        short_names=("no",),
        subresources=(_status("Node"),),
        status_subresource=True,
    ),
    ResourceInfo(
        group="",
        version="v1",
        kind="Pod",
        plural="pods",
        singular="pod",
        namespaced=True,
        short_names=("po",),
        categories=("all",),
        subresources=(
            _status("Pod"),
            Subresource("binding", "Binding", "", "v1", ("create",)),
        ),
        status_subresource=True,
        reset_status_on_create=True,
    ),
    ResourceInfo(
        group="",
        version="v1",
        kind="Service",
        plural="services",
        singular="service",
        namespaced=True,
        short_names=("svc",),
        categories=("all",),
        subresources=(_status("Service"),),
        status_subresource=True,
        reset_status_on_create=True,
        return_deleted_object=True,
    ),
    ResourceInfo(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        short_names=("ev",),
        allow_create_on_update=True,
    ),
    ResourceInfo(
        group="discovery.k8s.io",
        version="v1",
        kind="EndpointSlice",
        plural="endpointslices",
        singular="endpointslice",
        namespaced=True,
        allow_create_on_update=True,
    ),
    # networking.k8s.io/v1 NetworkPolicy has had no status subresource since its status field
    # was removed (Kubernetes 1.27), so none is served here either.
    ResourceInfo(
        group="networking.k8s.io",
        version="v1",
        kind="NetworkPolicy",
        plural="networkpolicies",
        singular="networkpolicy",
        namespaced=True,
        short_names=("netpol",),
    ),
)


class ResourceRegistry:
    """Lookups over a fixed set of `ResourceInfo`s (immutable after construction)."""

    def __init__(self, resources: Iterable[ResourceInfo] = BUILTIN_RESOURCES) -> None:
        self._all = tuple(resources)
        self._by_path = {(r.group, r.version, r.plural): r for r in self._all}
        self._by_key = {r.key: r for r in self._all}
        self._by_kind = {(r.group, r.kind): r for r in self._all}
        if len(self._by_key) != len(self._all):
            raise ValueError("duplicate resource declaration")

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(self._all)

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def by_key(self, key: str) -> ResourceInfo:
        return self._by_key[key]

    def by_kind(self, group: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((group, kind))

    def group_versions(self) -> list[tuple[str, str]]:
        """(group, version) pairs in declaration order, core first."""
        seen: dict[tuple[str, str], None] = {}
        for r in self._all:
            seen.setdefault((r.group, r.version), None)
        return sorted(seen, key=lambda gv: (gv[0] != "", list(seen).index(gv)))

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [r for r in self._all if r.group == group and r.version == version]
