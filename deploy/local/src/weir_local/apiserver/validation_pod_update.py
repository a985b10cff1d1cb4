"""Pod update and status-update validation, after ValidatePodUpdate/ValidatePodStatusUpdate.

The update rule is upstream's: the spec is immutable except for the fields listed in
UPDATABLE_POD_SPEC_FIELDS, checked by overwriting those fields with their old values and comparing
what is left. Status writes check conditions, IPs, the QoS class and container state transitions.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import _convert
from . import _k8s_names as names
from . import _k8s_net as net
from .errors import FieldError, duplicate, forbidden, invalid, required
from .validation_meta import (
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    dicts,
    index,
    key,
    meta,
    semantic,
    semantic_equal,
    spec,
    status,
    str_map,
    validate_dns1123_subdomain,
    validate_ip,
    validate_object_meta_update,
    validate_qualified_name,
)
from .validation_pod import (
    MAX_INT32,
    MIRROR_POD_ANNOTATION,
    validate_pod_metadata_and_spec,
    validate_tolerations,
)

UPDATABLE_POD_SPEC_FIELDS = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
]
SYSTEM_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized"})


# --- update -----------------------------------------------------------------------------------


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    errs += validate_pod_metadata_and_spec(new)
    errs += _validate_pod_annotation_updates(
        str_map(meta(new).get("annotations")), str_map(meta(old).get("annotations"))
    )
    ns, os_ = spec(new), spec(old)
    for section in ("containers", "initContainers"):
        section_errs, stop = _validate_container_updates(
            dicts(ns.get(section)), dicts(os_.get(section)), f"spec.{section}"
        )
        errs += section_errs
        if stop:
            return errs
    deadline_errs, stop = _validate_deadline_update(ns, os_)
    errs += deadline_errs
    if stop:
        return errs
    errs += _validate_only_added_tolerations(
        dicts(ns.get("tolerations")), dicts(os_.get("tolerations"))
    )
    errs += _validate_only_deleted_gates(
        dicts(ns.get("schedulingGates")), dicts(os_.get("schedulingGates"))
    )
    if semantic_equal(ns, os_):
        return errs
    munged, munge_errs = _munge_updatable_fields(ns, os_)
    errs += munge_errs
    if not semantic_equal(munged, os_):
        errs.append(
            forbidden(
                "spec",
                "pod updates may not change fields other than "
                + ",".join(UPDATABLE_POD_SPEC_FIELDS)
                + "\n"
                + spec_diff(os_, munged),
            )
        )
    return errs


def _validate_pod_annotation_updates(new: dict[str, str], old: dict[str, str]) -> list[FieldError]:
    path = key("metadata.annotations", MIRROR_POD_ANNOTATION)
    if (
        MIRROR_POD_ANNOTATION in old
        and new.get(MIRROR_POD_ANNOTATION) != old[MIRROR_POD_ANNOTATION]
    ):
        return [forbidden(path, "may not remove or update mirror pod annotation")]
    if MIRROR_POD_ANNOTATION in new and MIRROR_POD_ANNOTATION not in old:
        return [forbidden(path, "may not add mirror pod annotation")]
    return []


def _validate_container_updates(
    new: list[dict[str, Any]], old: list[dict[str, Any]], path: str
) -> tuple[list[FieldError], bool]:
    if len(new) != len(old):
        return [forbidden(path, "pod updates may not add or remove containers")], True
    errs: list[FieldError] = []
    for i, ctr in enumerate(new):
        image = as_str(ctr.get("image"))
        if not image:
            errs.append(required(child(index(path, i), "image")))
        if image != image.strip():
            errs.append(
                invalid(
                    child(index(path, i), "image"),
                    image,
                    "must not have leading or trailing whitespace",
                )
            )
    return errs, False


def _validate_deadline_update(
    ns: dict[str, Any], os_: dict[str, Any]
) -> tuple[list[FieldError], bool]:
    """activeDeadlineSeconds may be set once, then only lowered."""
    path = "spec.activeDeadlineSeconds"
    new, old = as_int(ns.get("activeDeadlineSeconds")), as_int(os_.get("activeDeadlineSeconds"))
    if new is not None:
        if not 0 <= new <= MAX_INT32:
            return [invalid(path, new, names.inclusive_range(0, MAX_INT32))], True
        if old is not None and old < new:
            return [invalid(path, new, "must be less than or equal to previous value")], True
    elif old is not None:
        return [invalid(path, None, "must not update from a positive integer to nil value")], False
    return [], False


def _validate_only_added_tolerations(
    new: list[dict[str, Any]], old: list[dict[str, Any]]
) -> list[FieldError]:
    path = "spec.tolerations"

    def without_seconds(t: dict[str, Any]) -> Any:
        return semantic({k: v for k, v in t.items() if k != "tolerationSeconds"})

    new_keys = [without_seconds(t) for t in new]
    for tol in old:
        if without_seconds(tol) not in new_keys:
            return [
                forbidden(
                    path, "existing toleration can not be modified except its tolerationSeconds"
                )
            ]
    return validate_tolerations(new, path)


def _validate_only_deleted_gates(
    new: list[dict[str, Any]], old: list[dict[str, Any]]
) -> list[FieldError]:
    old_names = {as_str(g.get("name")) for g in old}
    added: dict[str, int] = {}
    for i, gate in enumerate(new):
        added[as_str(gate.get("name"))] = i
    return [
        forbidden(
            f"spec.schedulingGates[{i}].name",
            f"only deletion is allowed, but found new scheduling gate '{name}'",
        )
        for name, i in added.items()
        if name not in old_names
    ]


def _munge_updatable_fields(
    ns: dict[str, Any], os_: dict[str, Any]
) -> tuple[dict[str, Any], list[FieldError]]:
    """The new spec with every updatable field reset to its old value."""
    munged = copy.deepcopy(ns)
    errs: list[FieldError] = []
    for section in ("containers", "initContainers"):
        old_ctrs = dicts(os_.get(section))
        for i, ctr in enumerate(as_list(munged.get(section))):
            if isinstance(ctr, dict) and i < len(old_ctrs):
                ctr["image"] = old_ctrs[i].get("image")
    for field_name in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        _copy_field(munged, os_, field_name)
    old_grace = as_int(os_.get("terminationGracePeriodSeconds"))
    if old_grace is not None and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if as_list(os_.get("schedulingGates")):
        # Gated pods may gain node selector entries (but not lose or change any).
        new_sel, old_sel = str_map(munged.get("nodeSelector")), str_map(os_.get("nodeSelector"))
        if new_sel != old_sel:
            if any(new_sel.get(k) != v for k, v in old_sel.items()):
                errs.append(
                    invalid(
                        "spec.nodeSelector",
                        new_sel,
                        "only additions to spec.nodeSelector are allowed (no mutations or "
                        "deletions)",
                    )
                )
            _copy_field(munged, os_, "nodeSelector")
    return munged, errs


def _copy_field(target: dict[str, Any], source: dict[str, Any], field_name: str) -> None:
    if field_name in source:
        target[field_name] = copy.deepcopy(source[field_name])
    else:
        target.pop(field_name, None)


def spec_diff(old: Any, new: Any) -> str:
    """A short `-`/`+` listing of what changed (upstream prints a Go cmp.Diff here)."""
    lines: list[str] = []
    _diff_into(semantic(old), semantic(new), "", lines)
    return "\n".join(lines)


def _diff_into(old: Any, new: Any, path: str, lines: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            _diff_into(old.get(k), new.get(k), child(path, k), lines)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff_into(a, b, index(path, i), lines)
        return
    if old is not None:
        lines.append(f"- {path}: {json.dumps(old, sort_keys=True)}")
    if new is not None:
        lines.append(f"+ {path}: {json.dumps(new, sort_keys=True)}")


# --- status -----------------------------------------------------------------------------------


def validate_pod_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    errs += _validate_pod_annotation_updates(
        str_map(meta(new).get("annotations")), str_map(meta(old).get("annotations"))
    )
    st, old_st = status(new), status(old)
    for i, cond in enumerate(dicts(st.get("conditions"))):
        cond_type = as_str(cond.get("type"))
        if cond_type not in SYSTEM_CONDITIONS:
            # Upstream roots this path at metadata; kept so messages match.
            errs += validate_qualified_name(cond_type, f"metadata.conditions[{i}].Type")
    if as_str(spec(new).get("nodeName")) != as_str(spec(old).get("nodeName")):
        errs.append(forbidden("status.nodeName", "may not be changed directly"))
    nominated = as_str(st.get("nominatedNodeName"))
    if nominated and nominated != as_str(old_st.get("nominatedNodeName")):
        errs += validate_dns1123_subdomain(nominated, "status.nominatedNodeName")
    if as_str(st.get("qosClass")) != as_str(old_st.get("qosClass")):
        errs.append(invalid("status.qosClass", as_str(st.get("qosClass")), "field is immutable"))
    restart = as_str(spec(old).get("restartPolicy"))
    errs += _validate_state_transitions(
        dicts(st.get("containerStatuses")),
        dicts(old_st.get("containerStatuses")),
        "status.containerStatuses",
        restart,
        frozenset(),
    )
    restartable = frozenset(
        as_str(c.get("name"))
        for c in dicts(spec(old).get("initContainers"))
        if c.get("restartPolicy") == "Always"
    )
    errs += _validate_state_transitions(
        dicts(st.get("initContainerStatuses")),
        dicts(old_st.get("initContainerStatuses")),
        "status.initContainerStatuses",
        restart,
        restartable,
    )
    errs += _validate_ip_list(_convert.pod_ips(st), "status.podIPs")
    errs += _validate_host_ips(st)
    return errs


def _validate_state_transitions(
    new: list[dict[str, Any]],
    old: list[dict[str, Any]],
    path: str,
    restart_policy: str,
    restartable: frozenset[str],
) -> list[FieldError]:
    """A container that terminated stays terminated unless the pod may restart it."""
    if restart_policy == "Always":
        return []
    errs: list[FieldError] = []
    for i, old_status in enumerate(old):
        terminated = as_dict(old_status.get("state")).get("terminated")
        if terminated is None:
            continue
        if as_int(as_dict(terminated).get("exitCode")) and restart_policy == "OnFailure":
            continue
        name = as_str(old_status.get("name"))
        if name in restartable:
            continue
        for new_status in new:
            state = as_dict(new_status.get("state"))
            if as_str(new_status.get("name")) == name and state.get("terminated") is None:
                errs.append(
                    forbidden(
                        child(index(path, i), "state"),
                        "may not be transitioned to non-terminated state",
                    )
                )
    return errs


def _validate_ip_list(entries: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ips = [as_str(as_dict(e).get("ip")) for e in entries]
    for i, ip in enumerate(ips):
        errs += validate_ip(ip, index(path, i))
    if len(ips) > 1:
        parsed = [p for p in (net.parse_ip(ip) for ip in ips) if p is not None]
        if not net.is_dual_stack(parsed) or len(ips) > 2:
            errs.append(
                invalid(path, entries, "may specify no more than one IP for each IP family")
            )
        seen: set[str] = set()
        for i, ip in enumerate(ips):
            if ip in seen:
                errs.append(duplicate(index(path, i), entries[i]))
            seen.add(ip)
    return errs


def _validate_host_ips(st: dict[str, Any]) -> list[FieldError]:
    entries = _convert.host_ips(st)
    if not entries:
        return []
    errs: list[FieldError] = []
    first = as_str(as_dict(entries[0]).get("ip"))
    if as_str(st.get("hostIP")) != first:
        errs.append(invalid("status.hostIPs[0].ip", first, "must be equal to `hostIP`"))
    return errs + _validate_ip_list(entries, "status.hostIPs")
