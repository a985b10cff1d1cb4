"""Pod create validation, after ValidatePodCreate and ValidatePodSpec.

Container-level rules live in validation_containers, update and status rules in
validation_pod_update.
"""

from __future__ import annotations

import re
from typing import Any

from . import _k8s_names as names
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
    spec,
    str_map,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_ip,
    validate_labels,
    validate_object_meta,
    validate_qualified_name,
)

MAX_INT32 = 2**31 - 1
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
OS_NAMES = ["linux", "windows"]
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
_DNS1123_SUBDOMAIN_UNDERSCORE_FMT = (
    "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*"
)
_DNS1123_SUBDOMAIN_UNDERSCORE_RE = re.compile("^" + _DNS1123_SUBDOMAIN_UNDERSCORE_FMT + "$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


# --- create -----------------------------------------------------------------------------------


def validate_pod_create(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_pod_metadata_and_spec(obj)
    s = spec(obj)
    if as_list(s.get("ephemeralContainers")):
        errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if as_str(s.get("nodeName")) and as_list(s.get("schedulingGates")):
        errs.append(
            forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared")
        )
    return errs


def validate_pod_metadata_and_spec(obj: dict[str, Any]) -> list[FieldError]:
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
