"""Container-level Pod validation: names, images, ports, env, mounts, resources, probes.

Follows validateContainers/validateInitContainers/validateContainerCommon of
pkg/apis/core/validation for the fields a local dataplane cluster sees; see validation_pod for the
pod-level rules that call into this module.
"""

from __future__ import annotations

from typing import Any

from . import _k8s_names as names
from . import _quantity as quantity
from .errors import (
    FieldError,
    FieldErrorType,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from .validation_meta import (
    IS_NEGATIVE,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    dicts,
    index,
    key,
    messages_as_invalid,
    validate_dns1123_label,
    validate_qualified_name,
)
from .validation_service import validate_port_num_or_name

PORT_PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
URI_SCHEMES = ["HTTP", "HTTPS"]
HANDLER_TYPES = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")
PROBE_HANDLER_TYPES = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLER_TYPES = ("exec", "httpGet", "tcpSocket", "sleep")
STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
# helper.IsStandardResourceName: container resources plus the quota-only names.
STANDARD_RESOURCES = STANDARD_CONTAINER_RESOURCES | frozenset(
    {
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
        "storage",
    }
)
UINT32_MAX = 0xFFFFFFFF
ENV_FIELD_PATHS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def validate_containers(
    containers: list[dict[str, Any]],
    volumes: set[str],
    grace_period: int | None,
    path: str,
) -> list[FieldError]:
    """Regular containers: required, unique names, probes/lifecycle allowed, host ports."""
    if not containers:
        return [required(path)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, ctr in enumerate(containers):
        ctr_path = index(path, i)
        errs += validate_container_common(ctr, volumes, ctr_path)
        name = as_str(ctr.get("name"))
        if name in seen:
            errs.append(duplicate(child(ctr_path, "name"), name))
        seen.add(name)
        errs += _validate_lifecycle_and_probes(ctr, grace_period, ctr_path)
        if ctr.get("restartPolicy") is not None:
            errs.append(
                forbidden(
                    child(ctr_path, "restartPolicy"), "may not be set for non-init containers"
                )
            )
    errs += host_port_conflicts(containers, path)
    return errs


def validate_init_containers(
    containers: list[dict[str, Any]],
    regular: list[dict[str, Any]],
    volumes: set[str],
    grace_period: int | None,
    path: str,
) -> list[FieldError]:
    errs: list[FieldError] = []
    seen = {as_str(c.get("name")) for c in regular}
    for i, ctr in enumerate(containers):
        ctr_path = index(path, i)
        errs += validate_container_common(ctr, volumes, ctr_path)
        restart = ctr.get("restartPolicy")
        if restart is not None and restart != "Always":
            errs.append(not_supported(child(ctr_path, "restartPolicy"), restart, ["Always"]))
        name = as_str(ctr.get("name"))
        if name in seen:
            errs.append(duplicate(child(ctr_path, "name"), name))
        elif name:
            seen.add(name)
        # Init containers run one by one, so host ports only clash within one container.
        errs += host_port_conflicts([ctr], path)
        if restart == "Always":
            errs += _validate_lifecycle_and_probes(ctr, grace_period, ctr_path)
        else:
            for field_name in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(field_name) is not None:
                    errs.append(
                        forbidden(
                            child(ctr_path, field_name),
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    return errs


def validate_container_common(
    ctr: dict[str, Any], volumes: set[str], path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    name = as_str(ctr.get("name"))
    if not name:
        errs.append(required(child(path, "name")))
    else:
        errs += validate_dns1123_label(name, child(path, "name"))
    if not as_str(ctr.get("image")):
        errs.append(required(child(path, "image")))
    errs += _enum(
        ctr.get("terminationMessagePolicy"),
        TERMINATION_MESSAGE_POLICIES,
        child(path, "terminationMessagePolicy"),
    )
    errs += validate_container_ports(dicts(ctr.get("ports")), child(path, "ports"))
    errs += _validate_env(dicts(ctr.get("env")), child(path, "env"))
    errs += _validate_env_from(dicts(ctr.get("envFrom")), child(path, "envFrom"))
    errs += _validate_volume_mounts(dicts(ctr.get("volumeMounts")), volumes, path)
    errs += _enum(ctr.get("imagePullPolicy"), PULL_POLICIES, child(path, "imagePullPolicy"))
    errs += validate_resources(as_dict(ctr.get("resources")), child(path, "resources"))
    errs += _validate_security_context(ctr.get("securityContext"), child(path, "securityContext"))
    return errs


def _enum(value: Any, allowed: list[str], path: str) -> list[FieldError]:
    if value is None or value == "":
        return [required(path)]
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


def validate_container_ports(ports: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port_path = index(path, i)
        name = as_str(port.get("name"))
        if name:
            problems = names.port_name(name)
            if problems:
                errs += messages_as_invalid(child(port_path, "name"), name, problems)
            elif name in seen:
                errs.append(duplicate(child(port_path, "name"), name))
            else:
                seen.add(name)
        container_port = as_int(port.get("containerPort")) or 0
        if container_port == 0:
            errs.append(required(child(port_path, "containerPort")))
        else:
            errs += messages_as_invalid(
                child(port_path, "containerPort"), container_port, names.port_num(container_port)
            )
        host_port = as_int(port.get("hostPort")) or 0
        if host_port:
            errs += messages_as_invalid(
                child(port_path, "hostPort"), host_port, names.port_num(host_port)
            )
        protocol = as_str(port.get("protocol"))
        if not protocol:
            errs.append(required(child(port_path, "protocol")))
        elif protocol not in PORT_PROTOCOLS:
            errs.append(not_supported(child(port_path, "protocol"), protocol, PORT_PROTOCOLS))
    return errs


def host_port_conflicts(containers: list[dict[str, Any]], path: str) -> list[FieldError]:
    """AccumulateUniqueHostPorts: protocol/hostIP/hostPort may be taken once."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, ctr in enumerate(containers):
        for pi, port in enumerate(dicts(ctr.get("ports"))):
            host_port = as_int(port.get("hostPort")) or 0
            if not host_port:
                continue
            text = f"{as_str(port.get('protocol'))}/{as_str(port.get('hostIP'))}/{host_port}"
            if text in seen:
                errs.append(
                    duplicate(child(index(child(index(path, ci), "ports"), pi), "hostPort"), text)
                )
            seen.add(text)
    return errs


def _validate_env(env: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        var_path = index(path, i)
        name = as_str(var.get("name"))
        if not name:
            errs.append(required(child(var_path, "name")))
        else:
            errs += messages_as_invalid(
                child(var_path, "name"), name, names.relaxed_env_var_name(name)
            )
        errs += _validate_env_value_from(var, child(var_path, "valueFrom"))
    return errs


def _validate_env_value_from(var: dict[str, Any], path: str) -> list[FieldError]:
    source = var.get("valueFrom")
    if source is None:
        return []
    src = as_dict(source)
    errs: list[FieldError] = []
    count = sum(1 for k in ENV_SOURCES if src.get(k) is not None)
    field_ref = src.get("fieldRef")
    if field_ref is not None:
        errs += _validate_env_field_ref(as_dict(field_ref), child(path, "fieldRef"))
    for selector in ("configMapKeyRef", "secretKeyRef"):
        ref = src.get(selector)
        if ref is not None:
            ref_path = child(path, selector)
            ref_name = as_str(as_dict(ref).get("name"))
            errs += messages_as_invalid(
                child(ref_path, "name"), ref_name, names.name_is_dns_subdomain(ref_name, False)
            )
            if not as_str(as_dict(ref).get("key")):
                errs.append(required(child(ref_path, "key")))
    if count == 0:
        errs.append(
            invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif as_str(var.get("value")):
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _validate_env_field_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    if not as_str(ref.get("apiVersion")):
        return [required(child(path, "apiVersion"))]
    field_path = as_str(ref.get("fieldPath"))
    if not field_path:
        return [required(child(path, "fieldPath"))]
    for subscripted in ("metadata.labels", "metadata.annotations"):
        if field_path.startswith(subscripted + "['") and field_path.endswith("']"):
            sub = field_path[len(subscripted) + 2 : -2]
            if subscripted == "metadata.annotations":
                sub = sub.lower()
            return validate_qualified_name(sub, path)
    if field_path not in ENV_FIELD_PATHS:
        return [not_supported(child(path, "fieldPath"), field_path, sorted(ENV_FIELD_PATHS))]
    return []


def _validate_env_from(sources: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, src in enumerate(sources):
        src_path = index(path, i)
        prefix = as_str(src.get("prefix"))
        if prefix:
            errs += messages_as_invalid(
                child(src_path, "prefix"), prefix, names.relaxed_env_var_name(prefix)
            )
        count = 0
        for ref_key in ("configMapRef", "secretRef"):
            ref = src.get(ref_key)
            if ref is None:
                continue
            count += 1
            ref_name = as_str(as_dict(ref).get("name"))
            ref_path = child(child(src_path, ref_key), "name")
            if not ref_name:
                errs.append(required(ref_path))
            else:
                errs += messages_as_invalid(
                    ref_path, ref_name, names.name_is_dns_subdomain(ref_name, True)
                )
        if count == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _validate_volume_mounts(
    mounts: list[dict[str, Any]], volumes: set[str], ctr_path: str
) -> list[FieldError]:
    path = child(ctr_path, "volumeMounts")
    errs: list[FieldError] = []
    mount_paths: set[str] = set()
    for i, mount in enumerate(mounts):
        mount_path = index(path, i)
        name = as_str(mount.get("name"))
        if not name:
            errs.append(required(child(mount_path, "name")))
        if name not in volumes:
            errs.append(not_found(child(mount_path, "name"), name))
        target = as_str(mount.get("mountPath"))
        if not target:
            errs.append(required(child(mount_path, "mountPath")))
        if target in mount_paths:
            errs.append(invalid(child(mount_path, "mountPath"), target, "must be unique"))
        mount_paths.add(target)
    return errs


def not_found(path: str, value: Any) -> FieldError:
    """field.NotFound (errors.py's not_found is the 404 Status, not a field error)."""
    return FieldError(FieldErrorType.NOT_FOUND, path, "", value)


def validate_resources(res: dict[str, Any], path: str) -> list[FieldError]:
    """ValidateContainerResourceRequirements: names, quantities, requests within limits."""
    errs: list[FieldError] = []
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    limits = _quantities(res.get("limits"))
    requests = _quantities(res.get("requests"))
    huge_pages = False
    cpu_or_memory = False
    for name, q in limits.items():
        errs += _validate_resource_entry(name, q, key(lim_path, name))
        huge_pages = huge_pages or name.startswith("hugepages-")
        cpu_or_memory = cpu_or_memory or name in ("cpu", "memory")
    for name, q in requests.items():
        errs += _validate_resource_entry(name, q, key(req_path, name))
        limit = limits.get(name)
        overcommit = _overcommit_allowed(name)
        if limit is not None and q is not None:
            if q.value != limit.value and not overcommit:
                errs.append(invalid(req_path, str(q), f"must be equal to {name} limit of {limit}"))
            elif q.value > limit.value:
                errs.append(
                    invalid(
                        req_path, str(q), f"must be less than or equal to {name} limit of {limit}"
                    )
                )
        elif limit is None and not overcommit:
            errs.append(required(lim_path, "Limit must be set for non overcommitable resources"))
        huge_pages = huge_pages or name.startswith("hugepages-")
        cpu_or_memory = cpu_or_memory or name in ("cpu", "memory")
    if huge_pages and not cpu_or_memory:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


def _quantities(value: Any) -> dict[str, quantity.Quantity | None]:
    return {str(k): quantity.parse(v) for k, v in as_dict(value).items()}


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    if _is_native(name) or name.startswith("requests."):
        return False
    return not names.qualified_name("requests." + name)


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith("hugepages-")


def _validate_resource_entry(name: str, q: quantity.Quantity | None, path: str) -> list[FieldError]:
    errs = _validate_container_resource_name(name, path)
    if q is None:
        return errs  # an unparsable quantity is a decode error reported by schema.prune
    if q.value < 0:
        errs.append(invalid(path, str(q), IS_NEGATIVE))
    if _is_extended(name) and (q.value * 1000) % 1000 != 0:
        errs.append(invalid(path, str(q), "must be an integer"))
    return errs


def _validate_container_resource_name(name: str, path: str) -> list[FieldError]:
    errs = messages_as_invalid(path, name, names.qualified_name(name))
    if errs:
        return errs
    if "/" not in name:
        if name not in STANDARD_RESOURCES and not name.startswith("hugepages-"):
            errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
        if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _validate_security_context(sc: Any, path: str) -> list[FieldError]:
    if sc is None:
        return []
    ctx = as_dict(sc)
    errs = validate_id_fields(ctx, path, ("runAsUser", "runAsGroup"))
    if ctx.get("allowPrivilegeEscalation") is False and ctx.get("privileged") is True:
        errs.append(
            invalid(
                path, ctx, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            )
        )
    return errs


def validate_id_fields(ctx: dict[str, Any], path: str, fields: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    for field_name in fields:
        errs += validate_id(ctx.get(field_name), child(path, field_name))
    return errs


def validate_id(value: Any, path: str) -> list[FieldError]:
    """User and group IDs are uint32 values."""
    number = as_int(value)
    if number is not None and not 0 <= number <= UINT32_MAX:
        return [invalid(path, number, names.inclusive_range(0, UINT32_MAX))]
    return []


def _validate_lifecycle_and_probes(
    ctr: dict[str, Any], grace_period: int | None, path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    lifecycle = ctr.get("lifecycle")
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            handler = as_dict(lifecycle).get(hook)
            if handler is not None:
                errs += _validate_handler(
                    as_dict(handler),
                    LIFECYCLE_HANDLER_TYPES,
                    grace_period,
                    child(path, "lifecycle", hook),
                )
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(probe_name)
        if probe is not None:
            errs += _validate_probe(
                as_dict(probe), probe_name, grace_period, child(path, probe_name)
            )
    return errs


def _validate_probe(
    probe: dict[str, Any], probe_name: str, grace_period: int | None, path: str
) -> list[FieldError]:
    errs = _validate_handler(probe, PROBE_HANDLER_TYPES, grace_period, path)
    for field_name in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        value = as_int(probe.get(field_name)) or 0
        if value < 0:
            errs.append(invalid(child(path, field_name), value, IS_NEGATIVE))
    probe_grace = as_int(probe.get("terminationGracePeriodSeconds"))
    if probe_grace is not None and probe_grace <= 0:
        errs.append(
            invalid(
                child(path, "terminationGracePeriodSeconds"), probe_grace, "must be greater than 0"
            )
        )
    success = as_int(probe.get("successThreshold")) or 0
    if probe_name in ("livenessProbe", "startupProbe") and success != 1:
        errs.append(invalid(child(path, "successThreshold"), success, "must be 1"))
    if probe_name == "readinessProbe" and probe_grace is not None:
        errs.append(
            invalid(
                child(path, "terminationGracePeriodSeconds"),
                probe_grace,
                "must not be set for readinessProbes",
            )
        )
    return errs


def _validate_handler(
    handler: dict[str, Any], allowed: tuple[str, ...], grace_period: int | None, path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for kind in HANDLER_TYPES:
        if kind not in allowed or handler.get(kind) is None:
            continue
        if count:
            errs.append(forbidden(child(path, kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        errs += _validate_action(kind, as_dict(handler[kind]), grace_period, child(path, kind))
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _validate_action(
    kind: str, action: dict[str, Any], grace_period: int | None, path: str
) -> list[FieldError]:
    if kind == "exec":
        return [] if as_list(action.get("command")) else [required(child(path, "command"))]
    if kind in ("tcpSocket", "grpc"):
        return validate_port_num_or_name(action.get("port"), child(path, "port"))
    if kind == "sleep":
        seconds = as_int(action.get("seconds")) or 0
        if grace_period is not None and (seconds < 0 or seconds > grace_period):
            return [
                invalid(
                    path,
                    seconds,
                    "must be non-negative and less than terminationGracePeriodSeconds "
                    f"({grace_period})",
                )
            ]
        return []
    errs: list[FieldError] = []  # httpGet
    if not as_str(action.get("path")):
        errs.append(required(child(path, "path")))
    errs += validate_port_num_or_name(action.get("port"), child(path, "port"))
    scheme = action.get("scheme")
    if scheme not in URI_SCHEMES:
        errs.append(not_supported(child(path, "scheme"), scheme, URI_SCHEMES))
    for header in dicts(action.get("httpHeaders")):
        header_name = as_str(header.get("name"))
        if not header_name or not all(
            c.isascii() and (c.isalnum() or c == "-") for c in header_name
        ):
            errs.append(
                invalid(
                    child(path, "httpHeaders"),
                    header_name,
                    names.regex_error(
                        "a valid HTTP header must consist of alphanumeric characters or '-'",
                        "[-A-Za-z0-9]+",
                        "X-Header-Name",
                    ),
                )
            )
    return errs
