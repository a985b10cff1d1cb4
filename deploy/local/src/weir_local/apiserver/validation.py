"""Validation of the served kinds, with the field paths and messages of the real API server.

Entry points for the server; the rules live in validation_<area> modules that follow the
matching Go packages (pkg/apis/core/validation, .../networking/validation,
.../discovery/validation). Like the generic registry, a create first runs the kind's own rules
and, only if those pass, the registry's common ObjectMeta pass (path-segment-safe names); an update
runs the common pass and the kind's update rules together. Duplicate messages are dropped, as
ErrorList.ToAggregate drops them from the Status message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import FieldError
from .validation_cluster import (
    validate_endpoint_slice,
    validate_endpoint_slice_update,
    validate_event,
    validate_event_update,
    validate_namespace,
    validate_namespace_status_update,
    validate_namespace_update,
    validate_node,
    validate_node_update,
)
from .validation_meta import (
    dedupe,
    validate_generic_meta,
    validate_object_meta_update,
)
from .validation_networking import validate_network_policy, validate_network_policy_update
from .validation_pod import validate_pod_create
from .validation_pod_update import validate_pod_status_update, validate_pod_update
from .validation_service import (
    validate_service,
    validate_service_status_update,
    validate_service_update,
)

Obj = dict[str, Any]
CreateFn = Callable[[Obj], list[FieldError]]
UpdateFn = Callable[[Obj, Obj], list[FieldError]]

_NAMESPACED = {
    "Namespace": False,
    "Node": False,
    "Pod": True,
    "Service": True,
    "Event": True,
    "EndpointSlice": True,
    "NetworkPolicy": True,
}

_CREATE: dict[str, CreateFn] = {
    "Namespace": validate_namespace,
    "Node": validate_node,
    "Pod": validate_pod_create,
    "Service": validate_service,
    "Event": validate_event,
    "EndpointSlice": validate_endpoint_slice,
    "NetworkPolicy": validate_network_policy,
}

_UPDATE: dict[str, UpdateFn] = {
    "Namespace": validate_namespace_update,
    "Node": validate_node_update,
    "Pod": validate_pod_update,
    "Service": validate_service_update,
    "Event": validate_event_update,
    "EndpointSlice": validate_endpoint_slice_update,
    "NetworkPolicy": validate_network_policy_update,
}

# Kinds without a status subresource validate a status write like any update.
_STATUS: dict[str, UpdateFn] = {
    "Namespace": validate_namespace_status_update,
    "Node": validate_node_update,
    "Pod": validate_pod_status_update,
    "Service": validate_service_status_update,
}


def _namespaced(kind: str) -> bool:
    try:
        return _NAMESPACED[kind]
    except KeyError:
        raise ValueError(f"validation: unsupported kind {kind!r}") from None


def validate_create(kind: str, obj: dict[str, Any]) -> list[FieldError]:
    """All problems with a new object (already defaulted). Empty list = valid."""
    namespaced = _namespaced(kind)
    errs = _CREATE[kind](obj)
    if not errs:
        errs = validate_generic_meta(obj, namespaced)
    return dedupe(errs)


def validate_update(kind: str, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """All problems with replacing `old` by `new` (both defaulted), immutability included."""
    namespaced = _namespaced(kind)
    return _validate_any_update(namespaced, new, old, _UPDATE[kind])


def validate_status_update(kind: str, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Problems with a write to the status subresource (`new` carries old spec, new status)."""
    namespaced = _namespaced(kind)
    return _validate_any_update(namespaced, new, old, _STATUS.get(kind, _UPDATE[kind]))


def _validate_any_update(namespaced: bool, new: Obj, old: Obj, fn: UpdateFn) -> list[FieldError]:
    # validateCommonFields of the generic registry runs before the kind's own update rules.
    errs = validate_generic_meta(new, namespaced)
    errs += validate_object_meta_update(new, old, kube_finalizers=False)
    errs += fn(new, old)
    return dedupe(errs)
