"""OpenAPI v3 documents: enough for kubectl, not a full schema.

kubectl reads /openapi/v3 to decide whether the server validates fields itself: it looks for a
PATCH operation carrying `x-kubernetes-group-version-kind` of the object's kind and a
`fieldValidation` query parameter; with it, kubectl sends fieldValidation=Strict and skips
client-side schema validation. PATCH operations deliberately declare no request body media
types, so `kubectl apply` computes strategic merge patches from its built-in types rather than
from these thin schemas. /openapi/v2 is not served (kubectl falls back cleanly on a 404).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .resources import ResourceInfo, ResourceRegistry

Obj = dict[str, Any]

_QUERY = {"in": "query", "schema": {"type": "string", "uniqueItems": True}}
_PARAMS: dict[str, Obj] = {
    "dryRun": {
        "name": "dryRun",
        **_QUERY,
        "description": "When present, indicates that modifications should not be persisted.",
    },
    "fieldManager": {
        "name": "fieldManager",
        **_QUERY,
        "description": "fieldManager is a name associated with the actor making these changes.",
    },
    "fieldValidation": {
        "name": "fieldValidation",
        **_QUERY,
        "description": "fieldValidation instructs the server on how to handle objects in the "
        "request containing unknown or duplicate fields. Valid values are: Ignore, Warn "
        "(default), Strict.",
    },
    "labelSelector": {
        "name": "labelSelector",
        **_QUERY,
        "description": "A selector to restrict the list of returned objects by their labels.",
    },
    "fieldSelector": {
        "name": "fieldSelector",
        **_QUERY,
        "description": "A selector to restrict the list of returned objects by their fields.",
    },
    "watch": {"name": "watch", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}},
    "resourceVersion": {"name": "resourceVersion", **_QUERY},
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "uniqueItems": True}},
    "continue": {"name": "continue", **_QUERY},
    "gracePeriodSeconds": {
        "name": "gracePeriodSeconds",
        "in": "query",
        "schema": {"type": "integer", "uniqueItems": True},
    },
}
_PATH_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "uniqueItems": True},
}
_PATH_NS = {
    "name": "namespace",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "uniqueItems": True},
}


def schema_name(r: ResourceInfo) -> str:
    group = r.group or "core"
    pkg = "io.k8s.api.core" if group == "core" else "io.k8s.api." + group.removesuffix(".k8s.io")
    return f"{pkg}.{r.version}.{r.kind}"


def _op(
    r: ResourceInfo, action: str, op_id: str, params: list[str], kind: str | None = None
) -> Obj:
    ref = f"#/components/schemas/{schema_name(r)}"
    return {
        "operationId": op_id,
        "parameters": [_PARAMS[p] for p in params],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": ref}}},
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": r.group,
            "version": r.version,
            "kind": kind or r.kind,
        },
    }


def _gv_id(r: ResourceInfo) -> str:
    g = (
        r.group.removesuffix(".k8s.io").replace(".", " ").title().replace(" ", "")
        if r.group
        else "Core"
    )
    return g + r.version.capitalize()


def group_version_document(registry: ResourceRegistry, group: str, version: str) -> Obj | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Obj] = {}
    schemas: dict[str, Obj] = {}
    for r in resources:
        gv = _gv_id(r)
        scope = "Namespaced" if r.namespaced else ""
        coll = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}"
            if r.namespaced
            else f"{prefix}/{r.plural}"
        )
        item = coll + "/{name}"
        ns_params = [_PATH_NS] if r.namespaced else []
        paths[coll] = {
            "get": _op(
                r,
                "list",
                f"list{gv}{scope}{r.kind}",
                ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"],
            ),
            "post": _op(
                r,
                "post",
                f"create{gv}{scope}{r.kind}",
                ["dryRun", "fieldManager", "fieldValidation"],
            ),
            "delete": _op(
                r,
                "deletecollection",
                f"deleteCollection{gv}{scope}{r.kind}",
                ["labelSelector", "fieldSelector", "dryRun", "gracePeriodSeconds"],
            ),
            "parameters": ns_params,
        }
        paths[item] = {
            "get": _op(r, "get", f"read{gv}{scope}{r.kind}", []),
            "put": _op(
                r,
                "put",
                f"replace{gv}{scope}{r.kind}",
                ["dryRun", "fieldManager", "fieldValidation"],
            ),
            "patch": _op(
                r,
                "patch",
                f"patch{gv}{scope}{r.kind}",
                ["dryRun", "fieldManager", "fieldValidation"],
            ),
            "delete": _op(
                r, "delete", f"delete{gv}{scope}{r.kind}", ["dryRun", "gracePeriodSeconds"]
            ),
            "parameters": [_PATH_NAME, *ns_params],
        }
        if r.namespaced:
            paths[f"{prefix}/{r.plural}"] = {
                "get": _op(
                    r,
                    "list",
                    f"list{gv}{r.kind}ForAllNamespaces",
                    [
                        "labelSelector",
                        "fieldSelector",
                        "limit",
                        "continue",
                        "resourceVersion",
                        "watch",
                    ],
                ),
            }
        for sub in r.subresources:
            if sub.name == "status":
                paths[f"{item}/status"] = {
                    "get": _op(r, "get", f"read{gv}{scope}{r.kind}Status", []),
                    "put": _op(
                        r,
                        "put",
                        f"replace{gv}{scope}{r.kind}Status",
                        ["dryRun", "fieldManager", "fieldValidation"],
                    ),
                    "patch": _op(
                        r,
                        "patch",
                        f"patch{gv}{scope}{r.kind}Status",
                        ["dryRun", "fieldManager", "fieldValidation"],
                    ),
                    "parameters": [_PATH_NAME, *ns_params],
                }
        schemas[schema_name(r)] = {
            "type": "object",
            "description": f"{r.kind} ({r.api_version}), as served by the Weir local API server.",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": r.group, "version": r.version, "kind": r.kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


class OpenAPIDocuments:
    """The documents, serialized once, and the root index with content hashes."""

    def __init__(self, registry: ResourceRegistry) -> None:
        self.docs: dict[str, bytes] = {}
        for group, version in registry.group_versions():
            doc = group_version_document(registry, group, version)
            if doc is None:
                continue
            path = f"apis/{group}/{version}" if group else f"api/{version}"
            self.docs[path] = orjson.dumps(doc)
        self.hashes = {
            path: hashlib.sha512(raw).hexdigest()[:128].upper() for path, raw in self.docs.items()
        }
        self.root = orjson.dumps(
            {
                "paths": {
                    path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={h}"}
                    for path, h in self.hashes.items()
                }
            }
        )
