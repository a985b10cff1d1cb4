"""Decoding against the Kubernetes type schema: unknown fields and wrongly typed values.

A real API server decodes JSON into Go structs, so unknown fields vanish (and are reported under
fieldValidation=Strict/Warn) and a string where an int belongs is a 400. This module does the same
from the field tables of the kubernetes-asyncio models: unknown fields are removed and named the
way kube-apiserver names them (`spec.containers[0].foo`), and each wrongly typed value gets the
message Go's decoder gives (`json: cannot unmarshal string into Go struct field
ContainerPort.spec.containers.ports.containerPort of type int32`). Nulls in objects are dropped,
as decoding null into a Go field leaves its zero value.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client import models

from . import _quantity as quantity


@dataclass
class DecodeResult:
    unknown_fields: list[str] = field(default_factory=list)  # e.g. 'spec.containers[0].foo'
    type_errors: list[str] = field(default_factory=list)  # human-readable, one per bad value


ROOT_MODELS = {
    "Namespace": "V1Namespace",
    "Pod": "V1Pod",
    "Service": "V1Service",
    "Node": "V1Node",
    "Event": "CoreV1Event",
    "EndpointSlice": "V1EndpointSlice",
    "NetworkPolicy": "V1NetworkPolicy",
}
ALWAYS_ALLOWED = frozenset({"apiVersion", "kind", "metadata"})
# Fields the models type as `object`: IntOrString ports; anything else there is free-form JSON.
INT_OR_STRING = frozenset(
    {
        ("V1ServicePort", "targetPort"),
        ("V1NetworkPolicyPort", "port"),
        ("V1HTTPGetAction", "port"),
        ("V1TCPSocketAction", "port"),
    }
)
# resource.Quantity fields, which the models type as plain strings (or maps of them).
QUANTITY_FIELDS = frozenset(
    {
        ("V1ResourceRequirements", "limits"),
        ("V1ResourceRequirements", "requests"),
        ("V1VolumeResourceRequirements", "limits"),
        ("V1VolumeResourceRequirements", "requests"),
        ("V1PodSpec", "overhead"),
        ("V1NodeStatus", "capacity"),
        ("V1NodeStatus", "allocatable"),
        ("V1ContainerStatus", "allocatedResources"),
        ("V1PodStatus", "allocatedResources"),
        ("V1NodeAllocatableResourceClaimStatus", "resources"),
        ("V1EmptyDirVolumeSource", "sizeLimit"),
        ("V1ResourceFieldSelector", "divisor"),
    }
)
# The models say "int"; Go says int32 unless the field is one of these int64 ones.
INT64_FIELDS = frozenset(
    {
        "activeDeadlineSeconds",
        "capacity",
        "deletionGracePeriodSeconds",
        "expirationSeconds",
        "fsGroup",
        "generation",
        "gid",
        "observedGeneration",
        "runAsGroup",
        "runAsUser",
        "seconds",
        "sizeBytes",
        "supplementalGroups",
        "terminationGracePeriodSeconds",
        "tolerationSeconds",
        "uid",
    }
)
MICRO_TIME_FIELDS = frozenset(
    {("CoreV1Event", "eventTime"), ("CoreV1EventSeries", "lastObservedTime")}
)
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_LIST_RE = re.compile(r"^list\[(.*)\]$")
_DICT_RE = re.compile(r"^dict\(str, (.*)\)$")
_MODEL_PREFIX_RE = re.compile(r"^(?:[A-Z][a-z]+)?V\d+(?:(?:alpha|beta)\d+)?")


@dataclass(frozen=True)
class _Slot:
    """Where a value sits: its JSON path, the Go-style path and owning struct for messages."""

    path: str
    go_path: str
    owner: str
    model: str
    json_key: str


def prune(kind: str, obj: dict[str, Any]) -> DecodeResult:
    """Remove unknown fields from `obj` in place and report them and any type errors."""
    model = ROOT_MODELS.get(kind)
    if model is None:
        raise ValueError(f"schema: unsupported kind {kind!r}")
    result = DecodeResult()
    _walk_struct(obj, model, "", "", result)
    return result


@functools.cache
def _fields(model: str) -> dict[str, str]:
    """JSON field name -> openapi type string for one model; constant, so cached."""
    cls = getattr(models, model)
    return {cls.attribute_map[attr]: type_ for attr, type_ in cls.openapi_types.items()}


def _go_struct(model: str) -> str:
    return _MODEL_PREFIX_RE.sub("", model)


def _go_type(type_: str, slot: _Slot) -> str:
    """How Go would name the destination type in an unmarshal error."""
    if m := _LIST_RE.match(type_):
        return "[]" + _go_type(m.group(1), slot)
    if m := _DICT_RE.match(type_):
        if (slot.model, slot.json_key) in QUANTITY_FIELDS:
            return "v1.ResourceList"
        return "map[string]" + _go_type(m.group(1), slot)
    if type_ == "str":
        return "resource.Quantity" if (slot.model, slot.json_key) in QUANTITY_FIELDS else "string"
    if type_ == "int":
        return "int64" if slot.json_key in INT64_FIELDS else "int32"
    if type_ == "datetime":
        return "v1.MicroTime" if (slot.model, slot.json_key) in MICRO_TIME_FIELDS else "v1.Time"
    if type_ == "object":
        return "intstr.IntOrString"
    if type_ == "bool":
        return "bool"
    return "v1." + _go_struct(type_)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, type_: str, slot: _Slot, result: DecodeResult) -> None:
    what = _json_kind(value)
    if what == "number" and type_ == "int":
        what = f"number {value}"
    result.type_errors.append(
        f"json: cannot unmarshal {what} into Go struct field {slot.owner}.{slot.go_path} "
        f"of type {_go_type(type_, slot)}"
    )


def _walk_struct(
    obj: dict[str, Any], model: str, path: str, go_path: str, result: DecodeResult
) -> None:
    fields = _fields(model)
    owner = _go_struct(model)
    for key in list(obj):
        value = obj[key]
        key_path = f"{path}.{key}" if path else key
        if key not in fields:
            if not (path == "" and key in ALWAYS_ALLOWED):
                del obj[key]
                result.unknown_fields.append(key_path)
            continue
        if value is None:
            del obj[key]  # null decodes to the zero value
            continue
        slot = _Slot(key_path, f"{go_path}.{key}" if go_path else key, owner, model, key)
        _walk_value(value, fields[key], slot, result)


def _walk_value(value: Any, type_: str, slot: _Slot, result: DecodeResult) -> None:
    if m := _LIST_RE.match(type_):
        if not isinstance(value, list):
            _type_error(value, type_, slot, result)
            return
        for i, item in enumerate(value):
            if item is None:
                value[i] = _zero(m.group(1))
            else:
                item_slot = _Slot(
                    f"{slot.path}[{i}]", slot.go_path, slot.owner, slot.model, slot.json_key
                )
                _walk_value(item, m.group(1), item_slot, result)
        return
    if m := _DICT_RE.match(type_):
        if not isinstance(value, dict):
            _type_error(value, type_, slot, result)
            return
        for k, item in value.items():
            if item is None:
                value[k] = _zero(m.group(1))
            else:
                item_slot = _Slot(
                    f"{slot.path}[{k}]", slot.go_path, slot.owner, slot.model, slot.json_key
                )
                _walk_value(item, m.group(1), item_slot, result)
        return
    if type_ in ("str", "int", "bool", "datetime", "object"):
        _check_scalar(value, type_, slot, result)
        return
    if not isinstance(value, dict):
        _type_error(value, type_, slot, result)
        return
    _walk_struct(value, type_, slot.path, slot.go_path, result)


def _zero(type_: str) -> Any:
    """What a null list item or map value decodes to: the element type's zero value."""
    zeros: dict[str, Any] = {"str": "", "int": 0, "bool": False}
    if type_ in zeros:
        return zeros[type_]
    if type_ in ("datetime", "object") or _LIST_RE.match(type_) or _DICT_RE.match(type_):
        return None
    return {}


def _check_scalar(value: Any, type_: str, slot: _Slot, result: DecodeResult) -> None:
    where = (slot.model, slot.json_key)
    if type_ == "str" and where in QUANTITY_FIELDS:
        # Quantity.UnmarshalJSON parses any non-string JSON text as a number.
        if quantity.parse(value) is None:
            result.type_errors.append(quantity.QUANTITY_ERROR)
    elif type_ == "str":
        if not isinstance(value, str):
            _type_error(value, type_, slot, result)
    elif type_ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            _type_error(value, type_, slot, result)
            return
        lo, hi = _INT_RANGES[_go_type(type_, slot)]
        if not lo <= value <= hi:
            _type_error(value, type_, slot, result)
    elif type_ == "bool":
        if not isinstance(value, bool):
            _type_error(value, type_, slot, result)
    elif type_ == "datetime":
        _check_time(value, slot, result)
    elif where in INT_OR_STRING and (not isinstance(value, int | str) or isinstance(value, bool)):
        _type_error(value, type_, slot, result)


def _check_time(value: Any, slot: _Slot, result: DecodeResult) -> None:
    if not isinstance(value, str):
        result.type_errors.append(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type string"
        )
        return
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        if "T" not in value:
            raise ValueError(value)
    except ValueError:
        result.type_errors.append(
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse "{value}" '
            'as "2006"'
        )
