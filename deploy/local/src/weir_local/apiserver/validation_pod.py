"""Pod validation (create, update, status), after ValidatePodCreate/Update/StatusUpdate.

Container-level rules live in validation_containers. The update rule is upstream's: the spec is
immutable except for the fields listed in UPDATABLE_POD_SPEC_FIELDS, checked by overwriting
those fields with their old values and comparing what is left.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from . import _convert
from . import _k8s_names as names
from . import _k8s_net as net
from .errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from .validation_containers import (
    validate_containers,
    validate_id,
    validate_id_fields,
    validate_init_containers,
)
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
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_ip,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)

MAX_INT32 = 2**31 - 1
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
OS_NAMES = ["linux", "windows"]
SYSTEM_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized"})
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_CHARS = 2048
# Volume sources in upstream's order; the second one set is the one reported. Upstream's own
# path spellings (the "downwarAPI" typo included) are kept in VOLUME_ERROR_PATHS.
VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
)
VOLUME_ERROR_PATHS = {"downwardAPI": "downwarAPI", "cephfs": "cephFS"}
REQUIRED_VOLUME_FIELDS = {
    "hostPath": "path",
    "secret": "secretName",
    "configMap": "name",
    "persistentVolumeClaim": "claimName",
}
UPDATABLE_POD_SPEC_FIELDS = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
]
_DNS1123_SUBDOMAIN_UNDERSCORE_FMT = (
    "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*"
)
_DNS1123_SUBDOMAIN_UNDERSCORE_RE = re.compile("^" + _DNS1123_SUBDOMAIN_UNDERSCORE_FMT + "$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


# --- create -----------------------------------------------------------------------------------


def validate_pod_create(obj: dict[str, Any]) -> list[FieldError]:
    errs = _validate_pod_metadata_and_spec(obj)
    s = spec(obj)
    if as_list(s.get("ephemeralContainers")):
        errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if as_str(s.get("nodeName")) and as_list(s.get("schedulingGates")):
        errs.append(
            forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared")
        )
    return errs


def _validate_pod_metadata_and_spec(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, True, names.name_is_dns_subdomain)
    s = spec(obj)
    errs += _validate_pod_annotations(str_map(meta(obj).get("annotations")), s)
    errs += validate_pod_spec(s)
    if not as_str(s.get("serviceAccountName")):
        for vi, volume in enumerate(dicts(s.get("volumes"))):
            sources = as_list(as_dict(volume.get("projected")).get("sources"))
            for si, source in enumerate(dicts(sources)):
                if source.get("serviceAccountToken") is not None:
                    errs.append(
                        forbidden(
                            f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for section in ("containers", "initContainers"):
        for i, ctr in enumerate(dicts(s.get(section))):
            image = as_str(ctr.get("image"))
            if image != image.strip():
                errs.append(
                    invalid(
                        f"spec.{section}[{i}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return errs


def _validate_pod_annotations(annotations: dict[str, str], s: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    path = "metadata.annotations"
    if MIRROR_POD_ANNOTATION in annotations and not as_str(s.get("nodeName")):
        errs.append(
            invalid(
                key(path, MIRROR_POD_ANNOTATION),
                annotations[MIRROR_POD_ANNOTATION],
                "must set spec.nodeName if mirror pod annotation is set",
            )
        )
    cost = annotations.get(DELETION_COST_ANNOTATION)
    if cost is not None and not (_INT_RE.match(cost) and -(2**31) <= int(cost) <= MAX_INT32):
        errs.append(invalid(key(path, DELETION_COST_ANNOTATION), cost, "must be a 32bit integer"))
    return errs


def validate_pod_spec(s: dict[str, Any]) -> list[FieldError]:
    """ValidatePodSpec for the fields this server serves (no affinity/topology rules)."""
    path = "spec"
    errs: list[FieldError] = []
    grace = as_int(s.get("terminationGracePeriodSeconds"))
    if s.get("terminationGracePeriodSeconds") is None:
        errs.append(required(child(path, "terminationGracePeriodSeconds")))
    volumes, volume_errs = _validate_volumes(dicts(s.get("volumes")), child(path, "volumes"))
    errs += volume_errs
    containers = dicts(s.get("containers"))
    errs += validate_containers(containers, volumes, grace, child(path, "containers"))
    errs += validate_init_containers(
        dicts(s.get("initContainers")), containers, volumes, grace, child(path, "initContainers")
    )
    errs += _validate_host_network_ports(s)
    errs += _enum(s.get("restartPolicy"), RESTART_POLICIES, child(path, "restartPolicy"))
    errs += _enum(s.get("dnsPolicy"), DNS_POLICIES, child(path, "dnsPolicy"))
    errs += validate_labels(s.get("nodeSelector"), child(path, "nodeSelector"))
    errs += _validate_pod_security_context(s.get("securityContext"), child(path, "securityContext"))
    errs += _validate_dns_config(s.get("dnsConfig"), s.get("dnsPolicy"), child(path, "dnsConfig"))
    for i, gate in enumerate(dicts(s.get("readinessGates"))):
        errs += validate_qualified_name(
            as_str(gate.get("conditionType")),
            child(index(child(path, "readinessGates"), i), "conditionType"),
        )
    errs += _validate_scheduling_gates(
        dicts(s.get("schedulingGates")), child(path, "schedulingGates")
    )
    for field_name in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = as_str(s.get(field_name))
        if value:
            errs += validate_dns1123_subdomain(value, child(path, field_name))
    deadline = as_int(s.get("activeDeadlineSeconds"))
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(
            invalid(
                child(path, "activeDeadlineSeconds"), deadline, names.inclusive_range(1, MAX_INT32)
            )
        )
    for field_name in ("hostname", "subdomain"):
        value = as_str(s.get(field_name))
        if value:
            errs += validate_dns1123_label(value, child(path, field_name))
    errs += validate_tolerations(dicts(s.get("tolerations")), child(path, "tolerations"))
    for i, alias in enumerate(dicts(s.get("hostAliases"))):
        alias_path = index(child(path, "hostAliases"), i)
        errs += validate_ip(as_str(alias.get("ip")), child(alias_path, "ip"))
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            errs += validate_dns1123_subdomain(
                as_str(hostname), index(child(alias_path, "hostnames"), j)
            )
    if s.get("runtimeClassName") is not None:
        errs += validate_dns1123_subdomain(
            as_str(s.get("runtimeClassName")), child(path, "runtimeClassName")
        )
    if s.get("preemptionPolicy") is not None:
        errs += _enum(
            s.get("preemptionPolicy"), PREEMPTION_POLICIES, child(path, "preemptionPolicy")
        )
    errs += _validate_os(s.get("os"), child(path, "os"))
    return errs


def _enum(value: Any, allowed: list[str], path: str) -> list[FieldError]:
    if value is None or value == "":
        return [required(path)]
    return [] if value in allowed else [not_supported(path, value, allowed)]


def _validate_volumes(
    volumes: list[dict[str, Any]], path: str
) -> tuple[set[str], list[FieldError]]:
    """Volume names and sources; only volumes without errors can be mounted."""
    usable: set[str] = set()
    seen: set[str] = set()
    errs: list[FieldError] = []
    for i, volume in enumerate(volumes):
        vol_path = index(path, i)
        vol_errs = _validate_volume_source(volume, vol_path)
        name = as_str(volume.get("name"))
        if not name:
            vol_errs.append(required(child(vol_path, "name")))
        else:
            vol_errs += validate_dns1123_label(name, child(vol_path, "name"))
        if name in seen:
            vol_errs.append(duplicate(child(vol_path, "name"), name))
        if vol_errs:
            errs += vol_errs
        else:
            usable.add(name)
        seen.add(name)
    return usable, errs


def _validate_volume_source(volume: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for source in VOLUME_SOURCES:
        if volume.get(source) is None:
            continue
        if count:
            errs.append(
                forbidden(
                    child(path, VOLUME_ERROR_PATHS.get(source, source)),
                    "may not specify more than 1 volume type",
                )
            )
            continue
        count += 1
        required_field = REQUIRED_VOLUME_FIELDS.get(source)
        if required_field and not as_str(as_dict(volume[source]).get(required_field)):
            errs.append(required(child(path, source, required_field)))
    if count == 0:
        errs.append(required(path, "must specify a volume type"))
    return errs


def _validate_host_network_ports(s: dict[str, Any]) -> list[FieldError]:
    if s.get("hostNetwork") is not True:
        return []
    errs: list[FieldError] = []
    for ci, ctr in enumerate(dicts(s.get("containers"))):
        for pi, port in enumerate(dicts(ctr.get("ports"))):
            host_port = as_int(port.get("hostPort")) or 0
            if host_port != (as_int(port.get("containerPort")) or 0):
                errs.append(
                    invalid(
                        f"spec.containers[{ci}].ports[{pi}].hostPort",
                        host_port,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return errs


def _validate_pod_security_context(sc: Any, path: str) -> list[FieldError]:
    if sc is None:
        return []
    ctx = as_dict(sc)
    errs = validate_id_fields(ctx, path, ("fsGroup", "runAsUser", "runAsGroup"))
    for i, gid in enumerate(as_list(ctx.get("supplementalGroups"))):
        errs += validate_id(gid, index(child(path, "supplementalGroups"), i))
    if ctx.get("shareProcessNamespace") is True and ctx.get("hostPID") is True:
        errs.append(
            invalid(
                child(path, "shareProcessNamespace"),
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        )
    return errs


def _validate_dns_config(config: Any, policy: Any, path: str) -> list[FieldError]:
    if policy == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(as_dict(config).get("nameservers")):
            return [
                required(
                    child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if config is None:
        return []
    cfg = as_dict(config)
    errs: list[FieldError] = []
    nameservers = [as_str(x) for x in as_list(cfg.get("nameservers"))]
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        errs.append(
            invalid(
                child(path, "nameservers"),
                nameservers,
                f"must not have more than {MAX_DNS_NAMESERVERS} nameservers",
            )
        )
    for i, ns in enumerate(nameservers):
        errs += validate_ip(ns, index(child(path, "nameservers"), i))
    searches = [as_str(x) for x in as_list(cfg.get("searches"))]
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        errs.append(
            invalid(
                child(path, "searches"),
                searches,
                f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths",
            )
        )
    if len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        errs.append(
            invalid(
                child(path, "searches"),
                searches,
                f"must not have more than {MAX_DNS_SEARCH_CHARS} characters (including spaces) "
                "in the search list",
            )
        )
    for i, search in enumerate(searches):
        # RelaxedDNSSearchValidation (on by default): "." and underscores are allowed.
        if search != ".":
            errs += _validate_search_domain(
                search.removesuffix("."), index(child(path, "searches"), i)
            )
    for i, option in enumerate(dicts(cfg.get("options"))):
        if not as_str(option.get("name")):
            errs.append(required(index(child(path, "options"), i), "must not be empty"))
    return errs


def _validate_search_domain(value: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if len(value) > names.DNS1123_SUBDOMAIN_MAX:
        errs.append(invalid(path, value, names.max_len_chars(names.DNS1123_SUBDOMAIN_MAX)))
    if not _DNS1123_SUBDOMAIN_UNDERSCORE_RE.match(value):
        errs.append(
            invalid(
                path,
                value,
                names.regex_error(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '_', '-' or '.', and must start and end with an alphanumeric "
                    "character",
                    _DNS1123_SUBDOMAIN_UNDERSCORE_FMT,
                    "example.com",
                ),
            )
        )
    return errs


def _validate_scheduling_gates(gates: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        name = as_str(gate.get("name"))
        errs += validate_qualified_name(name, index(path, i))
        if name in seen:
            errs.append(duplicate(index(path, i), name))
        seen.add(name)
    return errs


def validate_tolerations(tolerations: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in enumerate(tolerations):
        tol_path = index(path, i)
        tol_key = as_str(tol.get("key"))
        operator = as_str(tol.get("operator"))
        value = as_str(tol.get("value"))
        effect = as_str(tol.get("effect"))
        if tol_key:
            errs += validate_qualified_name(tol_key, child(tol_path, "key"))
        if not tol_key and operator != "Exists":
            errs.append(
                invalid(
                    child(tol_path, "operator"),
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                invalid(
                    child(tol_path, "effect"),
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            problems = names.label_value(value)
            if problems:
                errs.append(invalid(child(tol_path, "operator"), value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                errs.append(
                    invalid(
                        child(tol_path, "operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            errs.append(not_supported(child(tol_path, "operator"), operator, TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(child(tol_path, "effect"), effect, TAINT_EFFECTS))
    return errs


def _validate_os(os_value: Any, path: str) -> list[FieldError]:
    if os_value is None:
        return []
    name = as_str(as_dict(os_value).get("name"))
    if not name:
        return [required(child(path, "name"), "cannot be empty")]
    return [] if name in OS_NAMES else [not_supported(path, name, OS_NAMES)]


# --- update -----------------------------------------------------------------------------------


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    errs += _validate_pod_metadata_and_spec(new)
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
