"""The three PATCH flavours: JSON merge patch, strategic merge patch, JSON patch.

Each follows the engine kube-apiserver uses rather than the bare RFC where the two differ, so a
patch behaves here as on a real cluster: k8s.io/apimachinery/pkg/util/strategicpatch (server
side: parallel lists merged, unmatched nulls dropped) and evanphx/json-patch v4. What kube reads
from Go struct tags (`patchStrategy`, `patchMergeKey`) lives in `_SCHEMAS`, one entry per struct
reachable from the served kinds. Where kube stores a patch value as it stands, the result is
what decoding into the typed object would leave (no directive keys, no nulls), because this
server keeps plain JSON. Every function works on deep copies; inputs are never changed.

Codes: a malformed patch answers 400 and an operation that cannot apply 422, as kube does;
strategic-merge errors that kube lets through as 500 (a missing merge key, an unknown
directive, a `$setElementOrder` that contradicts the patch) answer 400 here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final


class PatchError(Exception):
    """A patch that cannot be applied. `code` is the HTTP status the server answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------------------------


def json_merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 (application/merge-patch+json). Returns a new value; inputs are not changed.

    As kube's engine (evanphx/json-patch) applies it: a null or scalar patch is rejected
    ("Invalid JSON Patch", 400), an array patch is the result, and nulls are pruned from
    values set where the target had no object to merge into (inside their lists too).
    """
    if isinstance(patch, list):
        return _pruned(patch)
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch", 400)
    target = copy.deepcopy(original) if isinstance(original, dict) else {}
    return _merge_patch_into(target, patch)


def _merge_patch_into(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `target`, which the caller owns."""
    for key, value in patch.items():
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif isinstance(current, dict) and isinstance(value, dict):
            target[key] = _merge_patch_into(current, value)
        elif isinstance(current, dict):
            target[key] = copy.deepcopy(value)  # kube takes it as it stands here
        else:
            target[key] = _pruned(value)
    return target


def _pruned(value: Any) -> Any:
    """A copy without null object members, at any depth (list elements that are null stay)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Strategic merge patch: the patch metadata of the served kinds
# --------------------------------------------------------------------------------------------

_MERGE: Final = "merge"
_REPLACE: Final = "replace"
_DELETE: Final = "delete"


@dataclass(frozen=True, slots=True)
class FieldMeta:
    """What one field's Go struct tag says about patching it.

    `strategy` is "merge" (lists merge by `merge_key`, or as a set when it is ""), "replace"
    (a map is replaced whole) or "" (lists are replaced, maps merged). `schema` names the
    struct (in `_SCHEMAS`) that the field, or each element of the list, holds. `retain_keys`
    records the tag; applying a patch honours `$retainKeys` wherever it is sent, as kube does.
    """

    strategy: str = ""
    merge_key: str = ""
    retain_keys: bool = False
    schema: str = ""


_PLAIN: Final = FieldMeta()


def _merge_list_by(key: str = "", *, schema: str = "", retain_keys: bool = False) -> FieldMeta:
    """`patchStrategy:"merge" patchMergeKey:"<key>"`; no key for a list of scalars."""
    return FieldMeta(strategy=_MERGE, merge_key=key, retain_keys=retain_keys, schema=schema)


def _struct(schema: str) -> FieldMeta:
    """A field without a tag of its own whose struct has tagged fields further down."""
    return FieldMeta(schema=schema)


_META: Final = _struct("ObjectMeta")

# Tags from k8s.io/api core/v1, discovery/v1 and networking/v1 types.go. Fields not listed
# have no patchStrategy: their lists are replaced whole and their maps merged key by key.
# Lists below an atomic list (containerStatuses[].volumeMounts, ...) are never merged, so
# their structs are not listed. EndpointSlice, NetworkPolicy and Event have no tagged lists.
_SCHEMAS: Final[Mapping[str, Mapping[str, FieldMeta]]] = {
    "ObjectMeta": {
        "finalizers": _merge_list_by(),
        "ownerReferences": _merge_list_by("uid"),
    },
    "Pod": {"metadata": _META, "spec": _struct("PodSpec"), "status": _struct("PodStatus")},
    "PodSpec": {
        "volumes": _merge_list_by("name", retain_keys=True),
        "initContainers": _merge_list_by("name", schema="Container"),
        "containers": _merge_list_by("name", schema="Container"),
        # EphemeralContainerCommon repeats Container's tags.
        "ephemeralContainers": _merge_list_by("name", schema="Container"),
        "imagePullSecrets": _merge_list_by("name"),
        "hostAliases": _merge_list_by("ip"),
        "topologySpreadConstraints": _merge_list_by("topologyKey"),
        "schedulingGates": _merge_list_by("name"),
        "resourceClaims": _merge_list_by("name", retain_keys=True),
    },
    "Container": {
        "ports": _merge_list_by("containerPort"),
        "env": _merge_list_by("name"),
        "volumeMounts": _merge_list_by("mountPath"),
        "volumeDevices": _merge_list_by("devicePath"),
    },
    "PodStatus": {
        "conditions": _merge_list_by("type"),
        "podIPs": _merge_list_by("ip"),
        "hostIPs": _merge_list_by("ip"),
        "resourceClaimStatuses": _merge_list_by("name", retain_keys=True),
    },
    "Service": {
        "metadata": _META,
        "spec": _struct("ServiceSpec"),
        "status": _struct("ServiceStatus"),
    },
    "ServiceSpec": {"ports": _merge_list_by("port")},
    "ServiceStatus": {"conditions": _merge_list_by("type")},
    "Node": {"metadata": _META, "spec": _struct("NodeSpec"), "status": _struct("NodeStatus")},
    "NodeSpec": {"podCIDRs": _merge_list_by()},
    "NodeStatus": {
        "addresses": _merge_list_by("type"),
        "conditions": _merge_list_by("type"),
    },
    "Namespace": {"metadata": _META, "status": _struct("NamespaceStatus")},
    "NamespaceStatus": {"conditions": _merge_list_by("type")},
    "Event": {"metadata": _META},
    "EndpointSlice": {"metadata": _META},
    "NetworkPolicy": {"metadata": _META},
}


def patch_meta(kind: str, path: Iterable[str]) -> FieldMeta:
    """The patch metadata of the field at `path` (e.g. ("spec", "containers")) in `kind`."""
    meta = FieldMeta(schema=kind)
    for name in path:
        meta = _SCHEMAS.get(meta.schema, {}).get(name, _PLAIN)
    return meta


# --------------------------------------------------------------------------------------------
# Strategic merge patch: applying it
# --------------------------------------------------------------------------------------------

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER: Final = "$setElementOrder"

# mergepatch's error texts; interpretStrategicMergePatchError answers 400 for these.
_BAD_JSON_DOC: Final = "invalid JSON document"
_BAD_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_BAD_ORDER_LIST: Final = "invalid patch format of setElementOrder list"


class _Omit(Enum):
    """The value of a field a patch removes while creating it (`{"$patch": "delete"}`)."""

    OMIT = "omit"


def strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], kind: str
) -> dict[str, Any]:
    """application/strategic-merge-patch+json for one of the served kinds. Returns a new dict.

    Kinds without patch metadata get JSON-merge-patch semantics for lists (replaced whole);
    directives are still honoured. Directives never reach the result.
    """
    if not isinstance(patch, dict):
        raise PatchError(_BAD_JSON_DOC, 400)
    base = copy.deepcopy(original) if isinstance(original, dict) else {}
    return _merge_map(base, copy.deepcopy(patch), kind)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: str) -> dict[str, Any]:
    """Merge `patch` into `original`; both are owned (deep copies) and may be changed."""
    if _PATCH in patch:
        directive = patch[_PATCH]
        # "merge" is a struct-tag strategy only; kube rejects it as a directive.
        if directive not in (_REPLACE, _DELETE):
            raise PatchError(f"unknown patch type: {_go(directive)} in map: {_go(patch)}", 400)
        del patch[_PATCH]
        return _decoded(patch) if directive == _REPLACE else {}
    fields = _SCHEMAS.get(schema, {})
    _apply_retain_keys(original, patch)
    _apply_element_orders(original, patch, fields)
    deletions: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            target = _directive_target(key, _DELETE_FROM_PRIMITIVE_LIST, _BAD_PRIMITIVE_LIST)
            deletions[target] = value
        else:
            _merge_field(original, key, value, fields.get(key, _PLAIN))
    # After additions, so "add x, delete y" reads the same whatever the key order.
    for key, values in deletions.items():
        _delete_from_list(original, key, values)
    return original


def _merge_field(original: dict[str, Any], key: str, value: Any, meta: FieldMeta) -> None:
    if value is None:
        original.pop(key, None)
        return
    current = original.get(key)
    if isinstance(value, dict) and isinstance(current, dict) and meta.strategy != _REPLACE:
        original[key] = _merge_map(current, value, meta.schema)
    elif isinstance(value, list) and isinstance(current, list):
        original[key] = _merge_list(current, value, meta)
    elif isinstance(value, dict) and isinstance(current, dict):
        original[key] = _decoded(value)  # patchStrategy:"replace"
    else:
        # A new key, a scalar or a changed type: the patch value as it stands.
        fresh = _without_directives(value)
        if fresh is _Omit.OMIT:
            original.pop(key, None)
        else:
            original[key] = fresh


def _without_directives(value: Any) -> Any:
    """A patch value taken where there is nothing to merge into, as kube takes it: nulls
    dropped, any map carrying `$patch` dropped whole (Go: removeDirectives), other directive
    keys dropped as decoding into the typed object drops them. No merging, no reordering."""
    if isinstance(value, dict):
        if _PATCH in value:
            return _Omit.OMIT
        kept = {k: _without_directives(v) for k, v in value.items() if _is_data(k, v)}
        return {k: v for k, v in kept.items() if v is not _Omit.OMIT}
    if isinstance(value, list):
        items = [_without_directives(item) for item in value]
        return [item for item in items if item is not _Omit.OMIT]
    return value


def _decoded(value: Any) -> Any:
    """A patch value kube stores as it stands (replaced maps and lists, appended list
    elements), as decoding into the typed object leaves it: directive keys and nulls gone."""
    if isinstance(value, dict):
        return {k: _decoded(v) for k, v in value.items() if _is_data(k, v)}
    if isinstance(value, list):
        return _decoded_items(value)
    return value


def _decoded_items(items: list[Any]) -> list[Any]:
    return [_decoded(item) for item in items]


def _is_data(key: str, value: Any) -> bool:
    """Whether a patch map entry is data rather than a directive or a null."""
    directive = key in (_PATCH, _RETAIN_KEYS) or key.startswith(
        (_SET_ELEMENT_ORDER, _DELETE_FROM_PRIMITIVE_LIST)
    )
    return value is not None and not directive


def _directive_target(key: str, prefix: str, error: str) -> str:
    """The field a `$prefix/<field>` key is about."""
    head, slash, field = key.partition("/")
    if not slash or head != prefix:
        raise PatchError(error, 400)
    return field


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: clear every field of `original` the list does not name."""
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    if not isinstance(keep, list):
        raise PatchError(_BAD_RETAIN_KEYS, 400)
    for key, value in patch.items():
        parallel = key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER))
        if value is not None and not parallel and key not in keep:
            raise PatchError(_BAD_RETAIN_KEYS, 400)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _delete_from_list(original: dict[str, Any], key: str, values: Any) -> None:
    """`$deleteFromPrimitiveList/<key>`: drop every occurrence of each value."""
    if values is None:
        original.pop(key, None)  # as kube does for a null directive
        return
    if not isinstance(values, list):
        raise PatchError(_BAD_PRIMITIVE_LIST, 400)
    current = original.get(key)
    if isinstance(current, list):
        original[key] = [v for v in current if not any(_same(v, d) for d in values)]


# --- lists ---------------------------------------------------------------------------------


def _merge_list(original: list[Any], patch: list[Any], meta: FieldMeta) -> list[Any]:
    if meta.strategy != _MERGE:
        return _decoded_items(patch)  # replaced whole
    if not original and not patch:
        return original
    if _element_category(original, patch) != "map":
        merged = _dedupe([*original, *patch])
        return _normalize_order(merged, patch, original, "")
    key = meta.merge_key
    if not key:
        raise PatchError("cannot merge lists without merge key for type string", 400)
    original, patch, replaced = _apply_list_directives(original, patch, key)
    if replaced:
        return _decoded_items(patch)
    merged = _merge_elements(original, patch, key, meta.schema)
    return _normalize_order(merged, patch, original, key)


def _element_category(original: list[Any], patch: list[Any]) -> str:
    """The one JSON type all elements share (Go: sliceElementType)."""
    elements = [*original, *patch]
    category = _category(elements[0])
    if category == "list":
        raise PatchError("lists of lists are not supported", 422)
    if any(_category(e) != category for e in elements):
        raise PatchError(f"list element types are not identical: {_go([original, patch])}", 400)
    return category


def _apply_list_directives(
    original: list[Any], patch: list[Any], key: str
) -> tuple[list[Any], list[Any], bool]:
    """Apply `{"$patch": ...}` elements: deletions from `original`, and whether a
    `{"$patch": "replace"}` element asks for the rest of the patch to replace the list."""
    plain: list[Any] = []
    replaced = False
    for item in patch:
        if _PATCH not in item:
            plain.append(item)
            continue
        directive = item[_PATCH]
        if directive == _DELETE:
            if key not in item:
                raise _no_merge_key(item, key)
            # Every element with that key goes, duplicates included.
            original = [e for e in original if not (key in e and _same(e[key], item[key]))]
        elif directive == _REPLACE:
            replaced = True
        elif directive == _MERGE:
            raise PatchError("merging lists cannot yet be specified in the patch", 400)
        else:
            raise PatchError(f"unknown patch type: {_go(directive)} in map: {_go(item)}", 400)
    return original, plain, replaced


def _merge_elements(original: list[Any], patch: list[Any], key: str, schema: str) -> list[Any]:
    """Merge each patch element into the element with the same merge key, or append it."""
    merged = list(original)
    for item in patch:
        if key not in item:
            raise _no_merge_key(item, key)
        index = _find(merged, key, item[key])
        if index is None:
            merged.append(_decoded(item))
        else:
            merged[index] = _merge_map(merged[index], item, schema)
    return merged


def _find(items: list[Any], key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, dict) and key in item and _same(item[key], value):
            return index
    return None


def _normalize_order(
    merged: list[Any], patch: list[Any], server_order: list[Any], key: str
) -> list[Any]:
    """Order `merged` as kube does: patch elements in patch order, the others in their live
    order, interleaved so both relative orders hold (new elements come first)."""
    if key:
        _require_merge_key(key, merged, patch, server_order)
    from_patch = [item for item in merged if _index(patch, item, key) >= 0]
    server_only = [item for item in merged if _index(patch, item, key) < 0]
    return _interleave(
        _sorted_by(server_only, server_order, key),
        _sorted_by(from_patch, patch, key),
        server_order,
        key,
    )


def _apply_element_orders(
    original: dict[str, Any], patch: dict[str, Any], fields: Mapping[str, FieldMeta]
) -> None:
    """Process each `$setElementOrder/<field>` together with the `<field>` list it orders.

    The merged list is taken out of `patch` so the main merge does not see it again.
    """
    for directive in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        name = _directive_target(directive, _SET_ELEMENT_ORDER, _BAD_ORDER_LIST)
        if not isinstance(order, list):
            raise PatchError(_BAD_ORDER_LIST, 400)
        meta = fields.get(name, _PLAIN)
        patch_list = patch.get(name)
        if meta.strategy != _MERGE or (name in patch and not isinstance(patch_list, list)):
            continue  # the list is replaced or removed by the main merge; no order to keep
        current = original.get(name)
        live = current if isinstance(current, list) else None
        _check_order(patch_list or [], order, meta.merge_key)
        if patch_list is None:
            if live is None:
                continue
            merged = live
        elif live is None:
            # Nothing to merge into: taken as it stands, like any new value.
            merged = _without_directives(patch.pop(name))
        else:
            merged = _merge_list(live, patch.pop(name), meta)
        original[name] = _apply_order(merged, order, live or [], meta.merge_key)


def _check_order(patch_list: list[Any], order: list[Any], key: str) -> None:
    """The patch list's elements must appear in `$setElementOrder` in the same relative order."""
    if not order or not patch_list:
        return
    if key and any(not isinstance(item, dict) for item in patch_list):
        raise PatchError(_BAD_ORDER_LIST, 400)
    candidates = [item for item in patch_list if not _is_directive(item, _DELETE)]
    at_patch = at_order = 0
    while at_patch < len(candidates) and at_order < len(order):
        item = candidates[at_patch]
        if isinstance(item, dict) and _PATCH in item:
            at_patch += 1
            continue
        if _same_key(item, order[at_order], key):
            at_patch += 1
        at_order += 1
    if at_patch < len(candidates):
        raise PatchError(
            f"The order in patch list:\n{_go(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER} list:\n{_go(order)}\n",
            400,
        )


def _apply_order(merged: list[Any], order: list[Any], live: list[Any], key: str) -> list[Any]:
    """Elements named in `order` take its order; the rest keep their live positions."""
    if not merged:
        return merged
    if key:
        _require_merge_key(key, merged, order, live)
    named = [item for item in merged if _index(order, item, key) >= 0]
    others = [item for item in merged if _index(order, item, key) < 0]
    return _interleave(_sorted_by(others, live, key), _sorted_by(named, order, key), live, key)


def _interleave(left: list[Any], right: list[Any], live: list[Any], key: str) -> list[Any]:
    """Merge two sorted lists (Go: mergeSortedSlice). A `left` element goes first only when
    both are in `live` and it comes earlier there; so elements new to the list lead."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
            continue
        if i < len(left):
            left_at, right_at = _index(live, left[i], key), _index(live, right[j], key)
            if 0 <= left_at < right_at:
                out.append(left[i])
                i += 1
                continue
        out.append(right[j])
        j += 1
    return out


def _sorted_by(items: list[Any], order: list[Any], key: str) -> list[Any]:
    """Stable sort by position in `order` (unknown elements last)."""

    def position(item: Any) -> int:
        at = _index(order, item, key)
        return at if at >= 0 else len(order)

    return sorted(items, key=position)


def _index(items: list[Any], value: Any, key: str) -> int:
    """Position of `value` in `items`, matching maps by merge key and scalars by value."""
    wanted = _key_of(value, key)
    for at, item in enumerate(items):
        if _same(_key_of(item, key), wanted):
            return at
    return -1


def _key_of(item: Any, key: str) -> Any:
    if key and isinstance(item, dict):
        return item.get(key)
    return item


def _same_key(left: Any, right: Any, key: str) -> bool:
    if not key:
        return _same(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise PatchError(_BAD_ORDER_LIST, 400)
        if key not in item:
            raise _no_merge_key(item, key)
    return _same(left[key], right[key])


def _require_merge_key(key: str, *lists: list[Any]) -> None:
    for items in lists:
        for item in items:
            if not isinstance(item, dict) or key not in item:
                raise _no_merge_key(item, key)


def _is_directive(item: Any, directive: str) -> bool:
    return isinstance(item, dict) and item.get(_PATCH) == directive


def _dedupe(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if not any(_same(value, seen) for seen in unique):
            unique.append(value)
    return unique


def _no_merge_key(item: Any, key: str) -> PatchError:
    return PatchError(f"map: {_go(item)} does not contain declared merge key: {key}", 400)


# --------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------------------------
#
# kube applies JSON patches with evanphx/json-patch v4, which is laxer than RFC 6902 in ways
# clients rely on: "replace" of a missing object key adds it, array indices may be negative
# (counted from the end), a missing "value" is null, and "test" of an absent path against
# null passes. This follows kube there, and RFC 6902 for the whole-document pointer "".


class _Missing(Enum):
    MISSING = "missing"


_MAX_OPERATIONS: Final = 10000  # kube-apiserver's maxJSONPatchOperations; more answers 413


_Handler = Callable[[Any, Mapping[str, Any]], Any]


def json_patch(original: Any, operations: Any) -> Any:
    """RFC 6902 (application/json-patch+json). Returns a new value; inputs are not changed.

    A document that is not an array of objects is malformed (400); an operation that cannot
    be applied (unknown op, missing path, bad index, failed test) answers 422, as
    kube-apiserver does.
    """
    if operations is None:
        operations = []  # Go decodes JSON null into an empty patch
    if not isinstance(operations, list):
        raise PatchError(_unmarshal_error(operations, "jsonpatch.Patch"), 400)
    if len(operations) > _MAX_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {_MAX_OPERATIONS}, "
            f"got {len(operations)}",
            413,
        )
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise PatchError(_unmarshal_error(operation, "jsonpatch.Operation"), 400)
    document = copy.deepcopy(original)
    for operation in operations:
        document = _apply_operation(document, operation or {})
    return document


def _unmarshal_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go value of type {go_type}"


def _apply_operation(document: Any, operation: Mapping[str, Any]) -> Any:
    name = operation.get("op")
    handler = _OPERATIONS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise PatchError(f"Unexpected kind: {name if isinstance(name, str) else 'unknown'}")
    return handler(document, operation)


def _op_add(document: Any, operation: Mapping[str, Any]) -> Any:
    path, tokens = _pointer(operation, "path")
    value = _value(operation)
    if not tokens:
        return value
    parent = _container(
        document, tokens, f'add operation does not apply: doc is missing path: "{path}"'
    )
    _insert(parent, tokens[-1], value, f"error in add for path: '{path}'")
    return document


def _op_remove(document: Any, operation: Mapping[str, Any]) -> Any:
    path, tokens = _pointer(operation, "path")
    missing = f'remove operation does not apply: doc is missing path: "{path}"'
    if not tokens:
        raise PatchError(f"{missing}: missing value")
    parent = _container(document, tokens, missing)
    _take(parent, tokens[-1], f"error in remove for path: '{path}'")
    return document


def _op_replace(document: Any, operation: Mapping[str, Any]) -> Any:
    path, tokens = _pointer(operation, "path")
    value = _value(operation)
    if not tokens:
        return value
    parent = _container(
        document, tokens, f"replace operation does not apply: doc is missing path: {path}"
    )
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value  # kube adds a missing key rather than failing
        return document
    at = _resolve_index(parent, last, insert=False)
    if at is None:
        raise PatchError(
            f"replace operation does not apply: doc is missing key: {path}: missing value"
        )
    parent[at] = value
    return document


def _op_move(document: Any, operation: Mapping[str, Any]) -> Any:
    source, source_tokens = _pointer(operation, "from")
    missing = f"move operation does not apply: doc is missing from path: {source}"
    if not source_tokens:
        raise PatchError(f"{missing}: missing value")
    holder = _container(document, source_tokens, missing)
    value = _take(holder, source_tokens[-1], f"error in move for path: '{source_tokens[-1]}'")
    path, tokens = _pointer(operation, "path")
    if not tokens:
        return value
    # Moving a value into itself fails here: its old place is gone.
    parent = _container(
        document, tokens, f"move operation does not apply: doc is missing destination path: {path}"
    )
    _insert(parent, tokens[-1], value, f"error in move for path: '{path}'")
    return document


def _op_copy(document: Any, operation: Mapping[str, Any]) -> Any:
    source, source_tokens = _pointer(operation, "from")
    missing = f"copy operation does not apply: doc is missing from path: {source}"
    value = document
    if source_tokens:
        holder = _container(document, source_tokens, missing)
        value = _get(holder, source_tokens[-1], f"error in copy for from: '{source}'")
        if value is _Missing.MISSING:
            raise PatchError(f"{missing}: missing value")
    path, tokens = _pointer(operation, "path")
    value = copy.deepcopy(value)
    if not tokens:
        return value
    parent = _container(
        document, tokens, f"copy operation does not apply: doc is missing destination path: {path}"
    )
    _insert(parent, tokens[-1], value, "error while adding value during copy")
    return document


def _op_test(document: Any, operation: Mapping[str, Any]) -> Any:
    path, tokens = _pointer(operation, "path")
    actual = document
    if tokens:
        parent = _container(
            document, tokens, f"test operation does not apply: is missing path: {path}"
        )
        actual = _get(parent, tokens[-1], f"error in test for path: '{path}'")
    if actual is _Missing.MISSING or actual is None:
        passed = "value" in operation and operation["value"] is None
    else:
        passed = "value" in operation and _json_equal(actual, operation["value"])
    if not passed:
        raise PatchError(f"testing value {path} failed: test failed")
    return document


_OPERATIONS: Final[Mapping[str, _Handler]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}


def _pointer(operation: Mapping[str, Any], field: str) -> tuple[str, list[str]]:
    """The operation's JSON pointer (RFC 6901) and its unescaped reference tokens."""
    raw = operation.get(field)
    name = operation.get("op")
    if not isinstance(raw, str):
        raise PatchError(f"{name} operation failed to decode {field}: missing value")
    if raw == "":
        return raw, []
    if not raw.startswith("/"):
        raise PatchError(f'{name} operation does not apply: doc is missing path: "{raw}"')
    # "~1" before "~0", so "~01" reads as "~1" and not "/".
    return raw, [t.replace("~1", "/").replace("~0", "~") for t in raw[1:].split("/")]


def _value(operation: Mapping[str, Any]) -> Any:
    return copy.deepcopy(operation.get("value"))


def _container(document: Any, tokens: list[str], missing: str) -> Any:
    """The object or array that holds the pointer's last token."""
    node = document
    for token in tokens[:-1]:
        node = _child(node, token)
    if not isinstance(node, (dict, list)):
        raise PatchError(f"{missing}: missing value")
    return node


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _Missing.MISSING)
    if isinstance(node, list) and (at := _resolve_index(node, token, insert=False)) is not None:
        return node[at]
    return _Missing.MISSING


def _get(parent: Any, token: str, context: str) -> Any:
    if isinstance(parent, dict):
        return parent.get(token, _Missing.MISSING)
    at = _resolve_index(parent, token, insert=False)
    if at is None:
        raise PatchError(f"{context}: {_index_error(token)}")
    return parent[at]


def _insert(parent: Any, token: str, value: Any, context: str) -> None:
    if isinstance(parent, dict):
        parent[token] = value
        return
    at = _resolve_index(parent, token, insert=True)
    if at is None:
        error = _index_error(token)
        if not _GO_INT.fullmatch(token):
            error = f"value was not a proper array index: '{token}': {error}"
        raise PatchError(f"{context}: {error}")
    parent.insert(at, value)


def _take(parent: Any, token: str, context: str) -> Any:
    """Remove and return the value at `token`."""
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{context}: Unable to remove nonexistent key: {token}: missing value")
        return parent.pop(token)
    at = _resolve_index(parent, token, insert=False)
    if at is None:
        raise PatchError(f"{context}: {_index_error(token)}")
    return parent.pop(at)


_GO_INT: Final = re.compile(r"[+-]?[0-9]+")


def _resolve_index(items: list[Any], token: str, *, insert: bool) -> int | None:
    """The array position `token` names, or None. `-` appends; negative counts from the end."""
    size = len(items) + 1 if insert else len(items)
    if insert and token == "-":
        return len(items)
    if not _GO_INT.fullmatch(token):
        return None
    at = int(token)
    if at < 0:
        at += size
    return at if 0 <= at < size else None


def _index_error(token: str) -> str:
    if not _GO_INT.fullmatch(token):
        return f'strconv.Atoi: parsing "{token}": invalid syntax'
    return f"Unable to access invalid index: {int(token)}: invalid index referenced"


def _json_equal(left: Any, right: Any) -> bool:
    if _category(left) != _category(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(
            _json_equal(v, right[k]) for k, v in left.items()
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return bool(left == right)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _category(value: Any) -> str:
    """The JSON type; Go decodes every number to float64, so 1 and 1.0 are alike."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "map"


def _same(left: Any, right: Any) -> bool:
    """Go's == on decoded JSON values: same type and equal (True is not 1)."""
    return _category(left) == _category(right) and bool(left == right)


def _json_type(value: Any) -> str:
    """Go's name for a JSON value's type in unmarshal errors."""
    names = {"map": "object", "list": "array", "null": "null"}
    category = _category(value)
    return names.get(category, category)


def _go(value: Any) -> str:
    """Go's %v of a decoded JSON value, for error messages: map[a:1 b:[x y]]."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)
