"""Decoding of Kubernetes protobuf request bodies for the kinds kubectl's generators create.

`kubectl create namespace` and `kubectl create service ...` send their object as
`application/vnd.kubernetes.protobuf` (the typed clientset), not JSON. This decodes that
envelope (`k8s\\0` + runtime.Unknown) and the messages those commands use — Namespace and
Service with ObjectMeta — into the same dicts a JSON body gives. Fields not listed are
skipped; empty values are dropped, as Go's `omitempty` JSON would. Responses stay JSON (the
clients accept it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import StatusError, bad_request

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# A field: (JSON name, kind) where kind is "string", "int", "bool", "bytes", "map",
# a message name, or "repeated:<kind>".
Fields = dict[int, tuple[str, str]]

MESSAGES: dict[str, Fields] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", "map"),
        12: ("annotations", "map"),
        13: ("ownerReferences", "repeated:OwnerReference"),
        14: ("finalizers", "repeated:string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: ("finalizers", "repeated:string")},
    "NamespaceStatus": {1: ("phase", "string")},
    "Service": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "ServiceSpec"),
        3: ("status", "ServiceStatus"),
    },
    "ServiceSpec": {
        1: ("ports", "repeated:ServicePort"),
        2: ("selector", "map"),
        3: ("clusterIP", "string"),
        4: ("type", "string"),
        5: ("externalIPs", "repeated:string"),
        7: ("sessionAffinity", "string"),
        8: ("loadBalancerIP", "string"),
        9: ("loadBalancerSourceRanges", "repeated:string"),
        10: ("externalName", "string"),
        11: ("externalTrafficPolicy", "string"),
        12: ("healthCheckNodePort", "int"),
        13: ("publishNotReadyAddresses", "bool"),
        17: ("ipFamilyPolicy", "string"),
        18: ("clusterIPs", "repeated:string"),
        19: ("ipFamilies", "repeated:string"),
        20: ("allocateLoadBalancerNodePorts", "bool"),
        21: ("loadBalancerClass", "string"),
        22: ("internalTrafficPolicy", "string"),
        23: ("trafficDistribution", "string"),
    },
    "ServicePort": {
        1: ("name", "string"),
        2: ("protocol", "string"),
        3: ("port", "int"),
        4: ("targetPort", "IntOrString"),
        5: ("nodePort", "int"),
        6: ("appProtocol", "string"),
    },
    "IntOrString": {1: ("type", "int"), 2: ("intVal", "int"), 3: ("strVal", "string")},
    "ServiceStatus": {},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
}
# Top-level kinds this decoder knows.
KINDS = ("Namespace", "Service")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ValueError("truncated varint")
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def chunk(self) -> bytes:
        n = self.varint()
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("truncated field")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def skip(self, wire: int) -> None:
        if wire == 0:
            self.varint()
        elif wire == 1:
            self.pos += 8
        elif wire == 2:
            self.chunk()
        elif wire == 5:
            self.pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _map_entry(data: bytes) -> tuple[str, str]:
    r = _Reader(data)
    key = value = ""
    while r.pos < len(data):
        tag = r.varint()
        if tag >> 3 == 1 and tag & 7 == 2:
            key = r.chunk().decode()
        elif tag >> 3 == 2 and tag & 7 == 2:
            value = r.chunk().decode()
        else:
            r.skip(tag & 7)
    return key, value


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    fields = MESSAGES[name]
    out: dict[str, Any] = {}
    r = _Reader(data)
    while r.pos < len(data):
        tag = r.varint()
        num, wire = tag >> 3, tag & 7
        spec = fields.get(num)
        if spec is None:
            r.skip(wire)
            continue
        key, kind = spec
        repeated = kind.startswith("repeated:")
        kind = kind.removeprefix("repeated:")
        if kind == "map":
            k, v = _map_entry(r.chunk())
            out.setdefault(key, {})[k] = v
            continue
        value = _value(kind, wire, r)
        if repeated:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


_SCALARS: dict[str, Callable[[int], Any]] = {"int": _signed, "bool": bool}


def _value(kind: str, wire: int, r: _Reader) -> Any:
    if kind in _SCALARS:
        if wire != 0:
            raise ValueError(f"wire type {wire} for a {kind}")
        return _SCALARS[kind](r.varint())
    if wire != 2:
        raise ValueError(f"wire type {wire} for a {kind}")
    raw = r.chunk()
    if kind == "string":
        return raw.decode()
    if kind == "bytes":
        return raw
    if kind == "IntOrString":
        ios = decode_message("IntOrString", raw)
        return ios.get("strVal", "") if ios.get("type") == 1 else ios.get("intVal", 0)
    if kind == "Time":
        t = decode_message("Time", raw)
        return datetime.fromtimestamp(t.get("seconds", 0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return decode_message(kind, raw)


def _prune_empty(value: Any) -> Any:
    """Drop empty strings, zeros, false, empty maps and lists (Go's omitempty)."""
    if isinstance(value, dict):
        out = {k: _prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", 0, False, None, {}, [])}
    if isinstance(value, list):
        return [_prune_empty(v) for v in value]
    return value


def decode(body: bytes) -> dict[str, Any]:
    """The object a protobuf request body carries, as a JSON-shaped dict."""
    if not body.startswith(MAGIC):
        raise bad_request("the protobuf body does not start with the Kubernetes magic number")
    try:
        unknown = decode_message("Unknown", body[len(MAGIC) :])
        type_meta = unknown.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in KINDS:
            raise StatusError(
                415,
                "UnsupportedMediaType",
                f"protobuf bodies of kind {kind!r} are not supported by the Weir local API "
                "server; send JSON or YAML (kubectl create -f / apply -f)",
            )
        obj = _prune_empty(decode_message(kind, unknown.get("raw") or b""))
    except (ValueError, UnicodeDecodeError, KeyError) as e:
        raise bad_request(f"unable to decode the protobuf body: {e}") from None
    assert isinstance(obj, dict)
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
