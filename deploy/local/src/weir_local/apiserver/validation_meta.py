"""Shared validation pieces: field paths, JSON accessors, ObjectMeta, labels and LabelSelector.

Mirrors k8s.io/apimachinery/pkg/api/validation (ObjectMeta) and
k8s.io/apimachinery/pkg/apis/meta/v1/validation (labels, selectors); the kind modules build on it.
Objects are plain decoded JSON, so every accessor tolerates a missing or wrongly typed value:
type errors are reported by schema.prune before validation runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _k8s_names as names
from . import _k8s_net as net
from .errors import FieldError, forbidden, invalid, required, too_long

NameFunc = Callable[[str, bool], list[str]]

FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
LABEL_OPERATORS_WITH_VALUES = ("In", "NotIn")
LABEL_OPERATORS_WITHOUT_VALUES = ("Exists", "DoesNotExist")


# --- field paths, written the way field.Path prints them -------------------------------------


def child(path: str, *names_: str) -> str:
    for n in names_:
        path = f"{path}.{n}" if path else n
    return path


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# --- tolerant accessors ----------------------------------------------------------------------


def as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def as_str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def as_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def str_map(v: Any) -> dict[str, str]:
    return {str(k): x for k, x in as_dict(v).items() if isinstance(x, str)}


def dicts(v: Any) -> list[dict[str, Any]]:
    """List items as dicts (a non-object item becomes {} so indices stay right)."""
    return [as_dict(x) for x in as_list(v)]


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("metadata"))


def spec(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("spec"))


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("status"))


def semantic(v: Any) -> Any:
    """A form in which Go's Semantic.DeepEqual holds iff Python == holds.

    Go decodes absent, null and empty collections to the same zero value, so they compare equal.
    """
    if isinstance(v, dict):
        out = {k: semantic(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None and x not in ([], {})}
    if isinstance(v, list):
        return [semantic(x) for x in v]
    return v


def semantic_equal(a: Any, b: Any) -> bool:
    return bool(semantic(a) == semantic(b)) or (_is_empty(a) and _is_empty(b))


def _is_empty(v: Any) -> bool:
    return v is None or v in ([], {})


def immutable(new: Any, old: Any, path: str) -> list[FieldError]:
    if semantic_equal(new, old):
        return []
    return [invalid(path, new, FIELD_IMMUTABLE)]


def dedupe(errs: list[FieldError]) -> list[FieldError]:
    """Drop repeated errors, as ErrorList.ToAggregate does for the message."""
    seen: set[str] = set()
    out: list[FieldError] = []
    for e in errs:
        text = str(e)
        if text not in seen:
            seen.add(text)
            out.append(e)
    return out


# --- names, labels and selectors -------------------------------------------------------------


def messages_as_invalid(path: str, value: Any, messages: list[str]) -> list[FieldError]:
    return [invalid(path, value, m) for m in messages]


def validate_dns1123_label(value: str, path: str) -> list[FieldError]:
    return messages_as_invalid(path, value, names.dns1123_label(value))


def validate_dns1123_subdomain(value: str, path: str) -> list[FieldError]:
    return messages_as_invalid(path, value, names.dns1123_subdomain(value))


def validate_qualified_name(value: str, path: str) -> list[FieldError]:
    return messages_as_invalid(path, value, names.qualified_name(value))


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in str_map(labels).items():
        errs += validate_qualified_name(k, path)
        errs += messages_as_invalid(path, v, names.label_value(v))
    return errs


def validate_label_selector(selector: Any, path: str) -> list[FieldError]:
    """metav1 LabelSelector (invalid label values in selectors are not tolerated on create)."""
    if selector is None:
        return []
    sel = as_dict(selector)
    errs = validate_labels(sel.get("matchLabels"), child(path, "matchLabels"))
    for i, expr in enumerate(dicts(sel.get("matchExpressions"))):
        errs += _validate_selector_requirement(expr, index(child(path, "matchExpressions"), i))
    return errs


def _validate_selector_requirement(req: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    op = req.get("operator")
    values = [v for v in as_list(req.get("values")) if isinstance(v, str)]
    if op in LABEL_OPERATORS_WITH_VALUES:
        if not values:
            errs.append(
                required(
                    child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"
                )
            )
    elif op in LABEL_OPERATORS_WITHOUT_VALUES:
        if values:
            errs.append(
                forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    else:
        errs.append(invalid(child(path, "operator"), as_str(op), "not a valid selector operator"))
    errs += validate_qualified_name(as_str(req.get("key")), child(path, "key"))
    for i, value in enumerate(values):
        errs += messages_as_invalid(
            index(child(path, "values"), i), value, names.label_value(value)
        )
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ann = str_map(annotations)
    total = 0
    for k, v in ann.items():
        # Annotation keys are qualified names except that case does not matter.
        errs += messages_as_invalid(path, k, names.qualified_name(k.lower()))
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_finalizers(finalizers: Any, path: str, kube_checks: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    items = [f for f in as_list(finalizers) if isinstance(f, str)]
    for f in items:
        errs += messages_as_invalid(path, f, names.qualified_name(f))
    if "orphan" in items and "foregroundDeletion" in items:
        errs.append(
            invalid(path, items, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    if kube_checks:
        # core/v1 kinds additionally reject unqualified names that are not standard ones.
        for i, f in enumerate(items):
            if "/" not in f and f not in STANDARD_FINALIZERS:
                errs.append(
                    invalid(
                        index(path, i),
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    )
                )
    return errs


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controller = ""
    for ref in dicts(refs):
        api_version = as_str(ref.get("apiVersion"))
        kind = as_str(ref.get("kind"))
        version = api_version.rsplit("/", 1)[-1]
        if not version:
            errs.append(
                invalid(child(path, "apiVersion"), api_version, "version must not be empty")
            )
        if not kind:
            errs.append(invalid(child(path, "kind"), kind, "must not be empty"))
        if not as_str(ref.get("name")):
            errs.append(invalid(child(path, "name"), as_str(ref.get("name")), "must not be empty"))
        if not as_str(ref.get("uid")):
            errs.append(invalid(child(path, "uid"), as_str(ref.get("uid")), "must not be empty"))
        if api_version == "v1" and kind == "Event":
            errs.append(invalid(path, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{as_str(ref.get('name'))}"
            if controller:
                errs.append(
                    invalid(
                        path,
                        refs,
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {controller} and {current}",
                    )
                )
            else:
                controller = current
    return errs


def validate_object_meta(
    obj: dict[str, Any], namespaced: bool, name_fn: NameFunc, kube_finalizers: bool = True
) -> list[FieldError]:
    """ValidateObjectMeta (create), with core's extra check on unqualified finalizer names."""
    m = meta(obj)
    path = "metadata"
    errs: list[FieldError] = []
    generate_name = as_str(m.get("generateName"))
    if generate_name:
        errs += messages_as_invalid(
            child(path, "generateName"), generate_name, name_fn(generate_name, True)
        )
    name = as_str(m.get("name"))
    if not name:
        errs.append(required(child(path, "name"), "name or generateName is required"))
    else:
        errs += messages_as_invalid(child(path, "name"), name, name_fn(name, False))
    errs += _validate_meta_common(m, namespaced, kube_finalizers)
    return errs


def _validate_meta_common(
    m: dict[str, Any], namespaced: bool, kube_finalizers: bool
) -> list[FieldError]:
    path = "metadata"
    errs: list[FieldError] = []
    namespace = as_str(m.get("namespace"))
    if namespaced:
        if not namespace:
            errs.append(required(child(path, "namespace")))
        else:
            errs += messages_as_invalid(
                child(path, "namespace"), namespace, names.name_is_dns_label(namespace, False)
            )
    elif namespace:
        errs.append(forbidden(child(path, "namespace"), "not allowed on this type"))
    generation = as_int(m.get("generation"))
    if generation is not None and generation < 0:
        errs.append(invalid(child(path, "generation"), generation, IS_NEGATIVE))
    errs += validate_labels(m.get("labels"), child(path, "labels"))
    errs += validate_annotations(m.get("annotations"), child(path, "annotations"))
    errs += validate_owner_references(m.get("ownerReferences"), child(path, "ownerReferences"))
    errs += validate_finalizers(
        m.get("finalizers"), child(path, "finalizers"), kube_checks=kube_finalizers
    )
    return errs


def validate_object_meta_update(
    new: dict[str, Any], old: dict[str, Any], kube_finalizers: bool = True
) -> list[FieldError]:
    """ValidateObjectMetaUpdate: immutable identity fields, and the usual content rules."""
    nm, om = meta(new), meta(old)
    path = "metadata"
    errs: list[FieldError] = []
    if om.get("deletionTimestamp"):
        extra = sorted(
            {f for f in as_list(nm.get("finalizers")) if isinstance(f, str)}
            - {f for f in as_list(om.get("finalizers")) if isinstance(f, str)}
        )
        if extra:
            errs.append(
                forbidden(
                    child(path, "finalizers"),
                    "no new finalizers can be added if the object is being deleted, found new "
                    "finalizers []string{" + ", ".join(f'"{f}"' for f in extra) + "}",
                )
            )
    # "resourceVersion: must be specified for an update" is left out: every served kind allows
    # unconditional updates, for which the registry fills it in before validating.
    new_gen, old_gen = as_int(nm.get("generation")) or 0, as_int(om.get("generation")) or 0
    if new_gen < old_gen:
        errs.append(invalid(child(path, "generation"), new_gen, "must not be decremented"))
    for field_name in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
        errs += immutable(
            as_str(nm.get(field_name)), as_str(om.get(field_name)), child(path, field_name)
        )
    errs += immutable(
        nm.get("deletionGracePeriodSeconds"),
        om.get("deletionGracePeriodSeconds"),
        child(path, "deletionGracePeriodSeconds"),
    )
    errs += validate_labels(nm.get("labels"), child(path, "labels"))
    errs += validate_annotations(nm.get("annotations"), child(path, "annotations"))
    errs += validate_owner_references(nm.get("ownerReferences"), child(path, "ownerReferences"))
    errs += validate_finalizers(
        nm.get("finalizers"), child(path, "finalizers"), kube_checks=kube_finalizers
    )
    return errs


def validate_generic_meta(obj: dict[str, Any], namespaced: bool) -> list[FieldError]:
    """The registry's own ObjectMeta pass: names only need to be safe as a path segment."""
    return validate_object_meta(obj, namespaced, names.path_segment_name, kube_finalizers=False)


# --- IP and CIDR fields ----------------------------------------------------------------------


def validate_ip(value: str, path: str) -> list[FieldError]:
    return [] if net.parse_ip(value) is not None else [invalid(path, value, net.IP_MSG)]


def validate_cidr(value: str, path: str) -> list[FieldError]:
    return [] if net.parse_cidr(value) is not None else [invalid(path, value, net.CIDR_MSG)]


def validate_non_special_ip(value: str, path: str) -> list[FieldError]:
    ip = net.parse_ip(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    return [invalid(path, value, m) for m in net.special_ip_problems(ip, value)]
