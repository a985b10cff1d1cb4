"""Validation of the served kinds: field paths, reasons and wording as kube-apiserver gives them.

Expected messages are written out literally (copied from the Kubernetes sources), not built from
the module's own constants, so a wording drift fails here.
"""

from __future__ import annotations

import copy
import glob
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from weir_local.apiserver.defaults import apply_defaults
from weir_local.apiserver.errors import FieldError, unprocessable
from weir_local.apiserver.validation import (
    validate_create,
    validate_status_update,
    validate_update,
)

Obj = dict[str, Any]

# --- messages as Kubernetes prints them -------------------------------------------------------

DNS_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
PORT_RANGE = "must be between 1 and 65535, inclusive"
IMMUTABLE = "field is immutable"

META = {"uid": "3f1c", "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "1"}


# --- helpers ----------------------------------------------------------------------------------


def ready(kind: str, obj: Obj) -> Obj:
    """An object as the server hands it to validation: metadata filled, defaults applied."""
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {})
    for k, v in META.items():
        obj["metadata"].setdefault(k, v)
    apply_defaults(kind, obj)
    return obj


def triples(errs: list[FieldError]) -> list[tuple[str, str, str]]:
    return [(e.field, str(e.type), e.message()) for e in errs]


def create_errors(kind: str, obj: Obj) -> list[tuple[str, str, str]]:
    return triples(validate_create(kind, ready(kind, obj)))


def update_errors(kind: str, new: Obj, old: Obj) -> list[tuple[str, str, str]]:
    new_ready = ready(kind, new)
    new_ready["metadata"]["resourceVersion"] = "2"
    return triples(validate_update(kind, new_ready, ready(kind, old)))


def pod(**spec: Any) -> Obj:
    base: Obj = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": base,
    }


def service(**spec: Any) -> Obj:
    base: Obj = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": base,
    }


def netpol(**spec: Any) -> Obj:
    base: Obj = {"podSelector": {}}
    base.update(spec)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "default"},
        "spec": base,
    }


def slice_(**fields: Any) -> Obj:
    base: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abc12",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }
    base.update(fields)
    return base


def node(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": spec}


def namespace(name: str = "team-a", **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}


def event(**fields: Any) -> Obj:
    base: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "message": "Started container app",
        "type": "Normal",
    }
    base.update(fields)
    return base


def with_meta(obj: Obj, **meta: Any) -> Obj:
    obj = copy.deepcopy(obj)
    obj["metadata"].update(meta)
    return obj


def first_ingress_peer(peer: Obj) -> Obj:
    return netpol(ingress=[{"from": [peer]}])


# --- the kubectl-visible message --------------------------------------------------------------


def test_status_message_matches_kubectl_output() -> None:
    obj = ready("NetworkPolicy", first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/33"}}))
    status = unprocessable(
        "NetworkPolicy", "networking.k8s.io", "np", validate_create("NetworkPolicy", obj)
    )
    assert status.message == (
        'NetworkPolicy.networking.k8s.io "np" is invalid: spec.ingress[0].from[0].ipBlock.cidr: '
        'Invalid value: "10.0.0.0/33": ' + CIDR
    )
    assert status.details is not None
    assert status.details["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "10.0.0.0/33": ' + CIDR,
            "field": "spec.ingress[0].from[0].ipBlock.cidr",
        }
    ]


# --- NetworkPolicy ----------------------------------------------------------------------------


def _conformance_policies() -> list[tuple[str, Obj]]:
    out: list[tuple[str, Obj]] = []
    for path in sorted(glob.glob("/work/shared/conformance/netpol/cases/*.yaml")):
        with open(path) as f:
            # Some cases template pod IPs in; any concrete address will do for validation.
            text = re.sub(r"\$\{ip:[^}]*\}", "10.244.2.7", f.read())
        case = yaml.safe_load(text)
        for i, step in enumerate(case.get("steps", [])):
            if "apply_policy" in step:
                out.append((f"{case['name']}#{i}", step["apply_policy"]))
    return out


CONFORMANCE = _conformance_policies()


def test_conformance_cases_were_found() -> None:
    assert len(CONFORMANCE) >= 16


@pytest.mark.parametrize(("name", "policy"), CONFORMANCE, ids=[n for n, _ in CONFORMANCE])
def test_upstream_e2e_policies_are_valid(name: str, policy: Obj) -> None:
    assert create_errors("NetworkPolicy", policy) == []


VALID_NETPOLS: list[tuple[str, Obj]] = [
    ("empty spec", netpol()),
    ("deny all ingress and egress", netpol(policyTypes=["Ingress", "Egress"])),
    ("egress only", netpol(policyTypes=["Egress"], egress=[{}])),
    ("allow all ingress", netpol(ingress=[{}])),
    (
        "pod and namespace selector together",
        first_ingress_peer({"podSelector": {"matchLabels": {"a": "b"}}, "namespaceSelector": {}}),
    ),
    (
        "ipv6 block",
        first_ingress_peer({"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8::/64"]}}),
    ),
    ("host bits set in cidr", first_ingress_peer({"ipBlock": {"cidr": "10.1.2.3/8"}})),
    ("leading zeros (sloppy)", first_ingress_peer({"ipBlock": {"cidr": "010.001.0.0/16"}})),
    ("named port", netpol(ingress=[{"ports": [{"port": "http"}]}])),
    ("port range", netpol(egress=[{"ports": [{"port": 32000, "endPort": 32768}]}])),
    ("port equals endPort", netpol(egress=[{"ports": [{"port": 80, "endPort": 80}]}])),
    ("protocol only", netpol(ingress=[{"ports": [{"protocol": "SCTP"}]}])),
    ("udp", netpol(ingress=[{"ports": [{"protocol": "UDP", "port": 53}]}])),
    (
        "matchExpressions",
        first_ingress_peer(
            {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["a", "b"]},
                        {"key": "env", "operator": "DoesNotExist"},
                        {"key": "x.io/y", "operator": "Exists"},
                        {"key": "z", "operator": "NotIn", "values": [""]},
                    ]
                }
            }
        ),
    ),
]


@pytest.mark.parametrize(("name", "policy"), VALID_NETPOLS, ids=[n for n, _ in VALID_NETPOLS])
def test_valid_network_policies(name: str, policy: Obj) -> None:
    assert create_errors("NetworkPolicy", policy) == []


INVALID_NETPOLS: list[tuple[str, Obj, list[tuple[str, str, str]]]] = [
    (
        "peer with nothing",
        first_ingress_peer({}),
        [("spec.ingress[0].from[0]", "FieldValueRequired", "Required value: must specify a peer")],
    ),
    (
        "egress peer with nothing",
        netpol(egress=[{"to": [{}]}]),
        [("spec.egress[0].to[0]", "FieldValueRequired", "Required value: must specify a peer")],
    ),
    (
        "ipBlock with podSelector",
        first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
        [
            (
                "spec.ingress[0].from[0]",
                "FieldValueForbidden",
                "Forbidden: may not specify both ipBlock and another peer",
            )
        ],
    ),
    (
        "ipBlock with namespaceSelector",
        netpol(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]),
        [
            (
                "spec.egress[0].to[0]",
                "FieldValueForbidden",
                "Forbidden: may not specify both ipBlock and another peer",
            )
        ],
    ),
    (
        "cidr missing",
        first_ingress_peer({"ipBlock": {}}),
        [("spec.ingress[0].from[0].ipBlock.cidr", "FieldValueRequired", "Required value")],
    ),
    (
        "cidr prefix too long",
        first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/33"}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.cidr",
                "FieldValueInvalid",
                'Invalid value: "10.0.0.0/33": ' + CIDR,
            )
        ],
    ),
    (
        "cidr without prefix",
        first_ingress_peer({"ipBlock": {"cidr": "10.0.0.1"}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.cidr",
                "FieldValueInvalid",
                'Invalid value: "10.0.0.1": ' + CIDR,
            )
        ],
    ),
    (
        "cidr garbage",
        first_ingress_peer({"ipBlock": {"cidr": "ten/8"}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.cidr",
                "FieldValueInvalid",
                'Invalid value: "ten/8": ' + CIDR,
            )
        ],
    ),
    (
        "except invalid",
        first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/40"]}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.except[0]",
                "FieldValueInvalid",
                'Invalid value: "10.0.0.0/40": ' + CIDR,
            )
        ],
    ),
    (
        "except outside cidr",
        first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.except[0]",
                "FieldValueInvalid",
                'Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`',
            )
        ],
    ),
    (
        "except equal to cidr",
        first_ingress_peer(
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.0.0.0/8"]}}
        ),
        [
            (
                "spec.ingress[0].from[0].ipBlock.except[1]",
                "FieldValueInvalid",
                'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`',
            )
        ],
    ),
    (
        "except of the other family",
        first_ingress_peer({"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}),
        [
            (
                "spec.ingress[0].from[0].ipBlock.except[0]",
                "FieldValueInvalid",
                'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`',
            )
        ],
    ),
    (
        "unsupported protocol",
        netpol(ingress=[{"ports": [{"protocol": "ICMP"}]}]),
        [
            (
                "spec.ingress[0].ports[0].protocol",
                "FieldValueNotSupported",
                'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
            )
        ],
    ),
    (
        "lowercase protocol",
        netpol(egress=[{"ports": [{"protocol": "tcp", "port": 80}]}]),
        [
            (
                "spec.egress[0].ports[0].protocol",
                "FieldValueNotSupported",
                'Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP"',
            )
        ],
    ),
    (
        "port zero",
        netpol(ingress=[{"ports": [{"port": 0}]}]),
        [("spec.ingress[0].ports[0].port", "FieldValueInvalid", "Invalid value: 0: " + PORT_RANGE)],
    ),
    (
        "port too big",
        netpol(ingress=[{"ports": [{"port": 65536}]}]),
        [
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                "Invalid value: 65536: " + PORT_RANGE,
            )
        ],
    ),
    (
        "port name too long and uppercase",
        netpol(ingress=[{"ports": [{"port": "Very-Long-Port-Name"}]}]),
        [
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                'Invalid value: "Very-Long-Port-Name": must be no more than 15 characters',
            ),
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                'Invalid value: "Very-Long-Port-Name": must contain only alpha-numeric characters '
                "(a-z, 0-9), and hyphens (-)",
            ),
        ],
    ),
    (
        "port name digits only",
        netpol(ingress=[{"ports": [{"port": "8080"}]}]),
        [
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                'Invalid value: "8080": must contain at least one letter (a-z)',
            )
        ],
    ),
    (
        "port name with double and trailing hyphens",
        netpol(ingress=[{"ports": [{"port": "a--b-"}]}]),
        [
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                'Invalid value: "a--b-": must not contain consecutive hyphens',
            ),
            (
                "spec.ingress[0].ports[0].port",
                "FieldValueInvalid",
                'Invalid value: "a--b-": must not begin or end with a hyphen',
            ),
        ],
    ),
    (
        "endPort without port",
        netpol(ingress=[{"ports": [{"endPort": 90}]}]),
        [
            (
                "spec.ingress[0].ports[0].endPort",
                "FieldValueInvalid",
                "Invalid value: 90: may not be specified when `port` is not specified",
            )
        ],
    ),
    (
        "endPort with named port",
        netpol(ingress=[{"ports": [{"port": "http", "endPort": 90}]}]),
        [
            (
                "spec.ingress[0].ports[0].endPort",
                "FieldValueInvalid",
                "Invalid value: 90: may not be specified when `port` is non-numeric",
            )
        ],
    ),
    (
        "endPort below port",
        netpol(ingress=[{"ports": [{"port": 90, "endPort": 80}]}]),
        [
            (
                "spec.ingress[0].ports[0].endPort",
                "FieldValueInvalid",
                "Invalid value: 80: must be greater than or equal to `port`",
            )
        ],
    ),
    (
        "endPort too big",
        netpol(ingress=[{"ports": [{"port": 90, "endPort": 70000}]}]),
        [
            (
                "spec.ingress[0].ports[0].endPort",
                "FieldValueInvalid",
                "Invalid value: 70000: " + PORT_RANGE,
            )
        ],
    ),
    (
        "unknown policy type",
        netpol(policyTypes=["Ingress", "ingress"]),
        [
            (
                "spec.policyTypes[1]",
                "FieldValueNotSupported",
                'Unsupported value: "ingress": supported values: "Ingress", "Egress"',
            )
        ],
    ),
    (
        "three policy types",
        netpol(policyTypes=["Ingress", "Egress", "Ingress"]),
        [
            (
                "spec.policyTypes",
                "FieldValueInvalid",
                'Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two '
                "policyTypes",
            )
        ],
    ),
    (
        "podSelector bad operator",
        netpol(
            podSelector={"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}
        ),
        [
            (
                "spec.podSelector.matchExpressions[0].operator",
                "FieldValueInvalid",
                'Invalid value: "Equals": not a valid selector operator',
            )
        ],
    ),
    (
        "podSelector In without values",
        netpol(podSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
        [
            (
                "spec.podSelector.matchExpressions[0].values",
                "FieldValueRequired",
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            )
        ],
    ),
    (
        "namespaceSelector Exists with values",
        first_ingress_peer(
            {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
                }
            }
        ),
        [
            (
                "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values",
                "FieldValueForbidden",
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )
        ],
    ),
    (
        "selector key invalid",
        first_ingress_peer(
            {"podSelector": {"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}}
        ),
        [
            (
                "spec.ingress[0].from[0].podSelector.matchExpressions[0].key",
                "FieldValueInvalid",
                'Invalid value: "bad key": ' + NAME_PART,
            )
        ],
    ),
    (
        "selector value invalid",
        first_ingress_peer(
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]
                }
            }
        ),
        [
            (
                "spec.ingress[0].from[0].podSelector.matchExpressions[0].values[1]",
                "FieldValueInvalid",
                'Invalid value: "not ok": ' + LABEL_VALUE,
            )
        ],
    ),
    (
        "matchLabels value invalid",
        first_ingress_peer({"podSelector": {"matchLabels": {"app": "-web"}}}),
        [
            (
                "spec.ingress[0].from[0].podSelector.matchLabels",
                "FieldValueInvalid",
                'Invalid value: "-web": ' + LABEL_VALUE,
            )
        ],
    ),
    (
        "matchLabels key with empty prefix",
        netpol(podSelector={"matchLabels": {"/app": "web"}}),
        [
            (
                "spec.podSelector.matchLabels",
                "FieldValueInvalid",
                'Invalid value: "/app": prefix part must be non-empty',
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "policy", "expected"), INVALID_NETPOLS, ids=[n for n, _, _ in INVALID_NETPOLS]
)
def test_invalid_network_policies(
    name: str, policy: Obj, expected: list[tuple[str, str, str]]
) -> None:
    assert create_errors("NetworkPolicy", policy) == expected


def test_network_policy_reports_every_problem_in_order() -> None:
    policy = netpol(
        ingress=[{"ports": [{"protocol": "ICMP"}], "from": [{}]}],
        egress=[{"to": [{"ipBlock": {"cidr": "x"}}]}],
    )
    assert [f for f, _, _ in create_errors("NetworkPolicy", policy)] == [
        "spec.ingress[0].ports[0].protocol",
        "spec.ingress[0].from[0]",
        "spec.egress[0].to[0].ipBlock.cidr",
    ]


def test_network_policy_name_is_a_subdomain() -> None:
    errs = create_errors("NetworkPolicy", with_meta(netpol(), name="Allow_All"))
    assert errs == [
        ("metadata.name", "FieldValueInvalid", 'Invalid value: "Allow_All": ' + DNS_SUBDOMAIN)
    ]


def test_network_policy_update_applies_the_same_rules() -> None:
    old = first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}})
    new = first_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["12.0.0.0/8"]}})
    assert update_errors("NetworkPolicy", new, old) == [
        (
            "spec.ingress[0].from[0].ipBlock.except[0]",
            "FieldValueInvalid",
            'Invalid value: "12.0.0.0/8": must be a strict subset of `cidr`',
        )
    ]
    assert update_errors("NetworkPolicy", netpol(ingress=[{}]), old) == []


def test_network_policy_update_keeps_identity_immutable() -> None:
    old = netpol()
    new = with_meta(netpol(), uid="other")
    assert update_errors("NetworkPolicy", new, old) == [
        ("metadata.uid", "FieldValueInvalid", 'Invalid value: "other": field is immutable')
    ]


# --- ObjectMeta -------------------------------------------------------------------------------


NAME_CASES: list[tuple[str, str, str, str]] = [
    ("Namespace", "Team-A", "Invalid value", DNS_LABEL),
    ("Namespace", "team.a", "Invalid value", "must not contain dots"),
    ("Namespace", "a" * 64, "Invalid value", "must be no more than 63 characters"),
    ("Service", "1web", "Invalid value", DNS1035),
    ("Service", "web.api", "Invalid value", DNS1035),
    ("Pod", "web_1", "Invalid value", DNS_SUBDOMAIN),
    ("Node", "Node-1", "Invalid value", DNS_SUBDOMAIN),
    ("EndpointSlice", "web-", "Invalid value", DNS_SUBDOMAIN),
    ("Event", "a/b", "Invalid value", "may not contain '/'"),
    ("Event", "..", "Invalid value", "may not be '..'"),
]

BASE_BY_KIND: dict[str, Callable[[], Obj]] = {
    "Namespace": namespace,
    "Service": service,
    "Pod": pod,
    "Node": node,
    "EndpointSlice": slice_,
    "Event": event,
    "NetworkPolicy": netpol,
}


@pytest.mark.parametrize(("kind", "name", "head", "detail"), NAME_CASES)
def test_name_format_per_kind(kind: str, name: str, head: str, detail: str) -> None:
    obj = with_meta(BASE_BY_KIND[kind](), name=name)
    errs = create_errors(kind, obj)
    assert ("metadata.name", "FieldValueInvalid", f'{head}: "{name}": {detail}') in errs


def test_dns_label_length_and_format_both_reported() -> None:
    name = "A" * 64
    errs = create_errors("Namespace", namespace(name))
    assert [m for f, _, m in errs if f == "metadata.name"] == [
        f'Invalid value: "{name}": must be no more than 63 characters',
        f'Invalid value: "{name}": {DNS_LABEL}',
    ]


@pytest.mark.parametrize("name", ["web", "a.b.c", "x" * 253])
def test_valid_pod_names(name: str) -> None:
    assert create_errors("Pod", with_meta(pod(), name=name)) == []


@pytest.mark.parametrize("name", ["e.1", "Pod.Started:x", "weird name"])
def test_event_names_need_only_be_path_segments(name: str) -> None:
    assert create_errors("Event", with_meta(event(), name=name)) == []


def test_name_required() -> None:
    obj = pod()
    del obj["metadata"]["name"]
    assert create_errors("Pod", obj) == [
        ("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
    ]


def test_generate_name_may_end_in_a_dash() -> None:
    obj = with_meta(pod(), generateName="web-", name="web-x7k2p")
    assert create_errors("Pod", obj) == []
    bad = with_meta(service(), generateName="Web-", name="web-x7k2p")
    assert ("metadata.generateName", "FieldValueInvalid", f'Invalid value: "Web-": {DNS1035}') in (
        create_errors("Service", bad)
    )


def test_namespace_required_for_namespaced_kinds() -> None:
    obj = pod()
    del obj["metadata"]["namespace"]
    assert create_errors("Pod", obj) == [
        ("metadata.namespace", "FieldValueRequired", "Required value")
    ]


def test_namespace_must_be_a_label() -> None:
    errs = create_errors("Service", with_meta(service(), namespace="Prod"))
    assert errs == [
        ("metadata.namespace", "FieldValueInvalid", f'Invalid value: "Prod": {DNS_LABEL}')
    ]


@pytest.mark.parametrize("kind", ["Namespace", "Node"])
def test_namespace_forbidden_for_cluster_scoped_kinds(kind: str) -> None:
    obj = with_meta(BASE_BY_KIND[kind](), namespace="default")
    assert create_errors(kind, obj) == [
        ("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type")
    ]


LABEL_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"app": "web", "example.com/tier": "front", "e": ""}, []),
    ({"bad key": "x"}, ['Invalid value: "bad key": ' + NAME_PART]),
    ({"-a": "x"}, ['Invalid value: "-a": ' + NAME_PART]),
    (
        {"a/b/c": "x"},
        [
            'Invalid value: "a/b/c": a valid label key must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',"
            "  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
            "'/' (e.g. 'example.com/MyName')"
        ],
    ),
    ({"Example.com/a": "x"}, ['Invalid value: "Example.com/a": prefix part ' + DNS_SUBDOMAIN]),
    (
        {"example.com/": "x"},
        [
            'Invalid value: "example.com/": name part must be non-empty',
            'Invalid value: "example.com/": ' + NAME_PART,
        ],
    ),
    ({"k" * 64: "x"}, [f'Invalid value: "{"k" * 64}": name part must be no more than 63 bytes']),
    ({"app": "v" * 64}, [f'Invalid value: "{"v" * 64}": must be no more than 63 bytes']),
    ({"app": "a b"}, ['Invalid value: "a b": ' + LABEL_VALUE]),
    ({"app": "web-"}, ['Invalid value: "web-": ' + LABEL_VALUE]),
]


@pytest.mark.parametrize(("labels", "messages"), LABEL_CASES)
def test_labels(labels: dict[str, str], messages: list[str]) -> None:
    errs = create_errors("Pod", with_meta(pod(), labels=labels))
    assert [m for f, _, m in errs if f == "metadata.labels"] == messages
    assert all(f == "metadata.labels" for f, _, _ in errs)


def test_annotation_keys_are_case_insensitive_qualified_names() -> None:
    ok = with_meta(pod(), annotations={"Example.COM/Owner": "x", "note": "y" * 1000})
    assert create_errors("Pod", ok) == []
    bad = with_meta(pod(), annotations={"a b": "x"})
    assert create_errors("Pod", bad) == [
        ("metadata.annotations", "FieldValueInvalid", 'Invalid value: "a b": ' + NAME_PART)
    ]


def test_annotations_total_size() -> None:
    fits = with_meta(pod(), annotations={"k": "v" * (262144 - 1)})
    assert create_errors("Pod", fits) == []
    too_big = with_meta(pod(), annotations={"k": "v" * 262144})
    assert create_errors("Pod", too_big) == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: may not be more than 262144 bytes")
    ]


def test_finalizers() -> None:
    ok = with_meta(pod(), finalizers=["example.com/cleanup", "foregroundDeletion"])
    assert create_errors("Pod", ok) == []
    errs = create_errors("Pod", with_meta(pod(), finalizers=["cleanup"]))
    assert errs == [
        (
            "metadata.finalizers[0]",
            "FieldValueInvalid",
            'Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully '
            "qualified",
        )
    ]
    both = create_errors("Pod", with_meta(pod(), finalizers=["orphan", "foregroundDeletion"]))
    assert both == [
        (
            "metadata.finalizers",
            "FieldValueInvalid",
            'Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan and '
            "foregroundDeletion cannot be both set",
        )
    ]


def test_network_policy_accepts_unqualified_finalizers() -> None:
    # Only core/v1 kinds add the "standard finalizer" rule.
    assert create_errors("NetworkPolicy", with_meta(netpol(), finalizers=["cleanup"])) == []


def test_owner_references() -> None:
    good = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "rs",
        "uid": "1",
        "controller": True,
    }
    assert create_errors("Pod", with_meta(pod(), ownerReferences=[good])) == []
    bad = {"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}
    assert create_errors("Pod", with_meta(pod(), ownerReferences=[bad])) == [
        (
            "metadata.ownerReferences.apiVersion",
            "FieldValueInvalid",
            'Invalid value: "apps/": version must not be empty',
        ),
        (
            "metadata.ownerReferences.kind",
            "FieldValueInvalid",
            'Invalid value: "": must not be empty',
        ),
        (
            "metadata.ownerReferences.name",
            "FieldValueInvalid",
            'Invalid value: "": must not be empty',
        ),
        (
            "metadata.ownerReferences.uid",
            "FieldValueInvalid",
            'Invalid value: "": must not be empty',
        ),
    ]
    two = [good, {**good, "name": "rs2"}]
    errs = create_errors("Pod", with_meta(pod(), ownerReferences=two))
    assert len(errs) == 1
    assert errs[0][0] == "metadata.ownerReferences"
    assert errs[0][2].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for '
        "ReplicaSet/rs and ReplicaSet/rs2"
    )


@pytest.mark.parametrize("field", ["name", "namespace", "uid", "creationTimestamp"])
def test_identity_fields_are_immutable(field: str) -> None:
    old = pod()
    value = {
        "name": "web2",
        "namespace": "other",
        "uid": "9",
        "creationTimestamp": "2026-02-02T00:00:00Z",
    }[field]
    new = with_meta(pod(), **{field: value})
    errs = update_errors("Pod", new, old)
    assert (
        f"metadata.{field}",
        "FieldValueInvalid",
        f'Invalid value: "{value}": {IMMUTABLE}',
    ) in errs


def test_update_without_resource_version_is_unconditional() -> None:
    # Every served kind allows unconditional updates, so a missing resourceVersion is no error.
    old = ready("Pod", pod())
    new = copy.deepcopy(old)
    del new["metadata"]["resourceVersion"]
    assert triples(validate_update("Pod", new, old)) == []


def test_no_new_finalizers_while_deleting() -> None:
    old = ready("Pod", with_meta(pod(), deletionTimestamp="2026-03-01T00:00:00Z"))
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/x"]
    new["metadata"]["resourceVersion"] = "2"
    assert triples(validate_update("Pod", new, old)) == [
        (
            "metadata.finalizers",
            "FieldValueForbidden",
            "Forbidden: no new finalizers can be added if the object is being deleted, found new "
            'finalizers []string{"example.com/x"}',
        )
    ]


def test_duplicate_messages_are_reported_once() -> None:
    old = pod()
    new = with_meta(pod(), labels={"a b": "c"})
    errs = update_errors("Pod", new, old)
    assert errs == [("metadata.labels", "FieldValueInvalid", 'Invalid value: "a b": ' + NAME_PART)]


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported kind"):
        validate_create("Deployment", {})


# --- Pod --------------------------------------------------------------------------------------


def test_minimal_pod_is_valid() -> None:
    assert create_errors("Pod", pod()) == []


def test_realistic_pod_is_valid() -> None:
    obj = pod(
        initContainers=[{"name": "init", "image": "busybox", "command": ["true"]}],
        containers=[
            {
                "name": "app",
                "image": "registry.local:5000/app@sha256:" + "a" * 64,
                "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                ],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "APP",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
                    },
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "128Mi"},
                },
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
            },
            {"name": "sidecar", "image": "envoy:v1", "ports": [{"containerPort": 9901}]},
        ],
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
        nodeSelector={"kubernetes.io/os": "linux"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
        ],
        hostAliases=[{"ip": "10.0.0.9", "hostnames": ["db.local"]}],
        dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["svc.cluster.local"]},
        nodeName="node-1",
        activeDeadlineSeconds=600,
    )
    assert create_errors("Pod", obj) == []


INVALID_PODS: list[tuple[str, Obj, list[tuple[str, str, str]]]] = [
    (
        "no containers",
        pod(containers=[]),
        [("spec.containers", "FieldValueRequired", "Required value")],
    ),
    (
        "container name missing",
        pod(containers=[{"image": "x"}]),
        [("spec.containers[0].name", "FieldValueRequired", "Required value")],
    ),
    (
        "container name not a label",
        pod(containers=[{"name": "App_1", "image": "x"}]),
        [("spec.containers[0].name", "FieldValueInvalid", f'Invalid value: "App_1": {DNS_LABEL}')],
    ),
    (
        "duplicate container names",
        pod(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
        [("spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')],
    ),
    (
        "init container reuses a name",
        pod(initContainers=[{"name": "app", "image": "x"}]),
        [("spec.initContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "app"')],
    ),
    (
        "image missing",
        pod(containers=[{"name": "a"}]),
        [("spec.containers[0].image", "FieldValueRequired", "Required value")],
    ),
    (
        "image with whitespace",
        pod(containers=[{"name": "a", "image": " nginx"}]),
        [
            (
                "spec.containers[0].image",
                "FieldValueInvalid",
                'Invalid value: " nginx": must not have leading or trailing whitespace',
            )
        ],
    ),
    (
        "containerPort missing",
        pod(containers=[{"name": "a", "image": "x", "ports": [{}]}]),
        [("spec.containers[0].ports[0].containerPort", "FieldValueRequired", "Required value")],
    ),
    (
        "containerPort too big",
        pod(containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]),
        [
            (
                "spec.containers[0].ports[0].containerPort",
                "FieldValueInvalid",
                "Invalid value: 70000: " + PORT_RANGE,
            )
        ],
    ),
    (
        "hostPort too big",
        pod(
            containers=[
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 65536}]}
            ]
        ),
        [
            (
                "spec.containers[0].ports[0].hostPort",
                "FieldValueInvalid",
                "Invalid value: 65536: " + PORT_RANGE,
            )
        ],
    ),
    (
        "bad protocol",
        pod(
            containers=[
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}
            ]
        ),
        [
            (
                "spec.containers[0].ports[0].protocol",
                "FieldValueNotSupported",
                'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
            )
        ],
    ),
    (
        "bad port name",
        pod(
            containers=[
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http_alt"}]}
            ]
        ),
        [
            (
                "spec.containers[0].ports[0].name",
                "FieldValueInvalid",
                'Invalid value: "http_alt": must contain only alpha-numeric characters (a-z, 0-9), '
                "and "
                "hyphens (-)",
            )
        ],
    ),
    (
        "duplicate port names",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "ports": [
                        {"containerPort": 80, "name": "web"},
                        {"containerPort": 81, "name": "web"},
                    ],
                }
            ]
        ),
        [("spec.containers[0].ports[1].name", "FieldValueDuplicate", 'Duplicate value: "web"')],
    ),
    (
        "host port clash across containers",
        pod(
            containers=[
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]},
            ]
        ),
        [
            (
                "spec.containers[1].ports[0].hostPort",
                "FieldValueDuplicate",
                'Duplicate value: "TCP//8080"',
            )
        ],
    ),
    (
        "restartPolicy",
        pod(restartPolicy="Sometimes"),
        [
            (
                "spec.restartPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
            )
        ],
    ),
    (
        "dnsPolicy",
        pod(dnsPolicy="Cluster"),
        [
            (
                "spec.dnsPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", '
                '"ClusterFirst", "Default", "None"',
            )
        ],
    ),
    (
        "dnsPolicy None without config",
        pod(dnsPolicy="None"),
        [
            (
                "spec.dnsConfig",
                "FieldValueRequired",
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            )
        ],
    ),
    (
        "nodeName",
        pod(nodeName="Node_1"),
        [("spec.nodeName", "FieldValueInvalid", f'Invalid value: "Node_1": {DNS_SUBDOMAIN}')],
    ),
    (
        "serviceAccountName",
        pod(serviceAccountName="Bad"),
        [
            (
                "spec.serviceAccountName",
                "FieldValueInvalid",
                f'Invalid value: "Bad": {DNS_SUBDOMAIN}',
            )
        ],
    ),
    (
        "hostname",
        pod(hostname="web.1"),
        [("spec.hostname", "FieldValueInvalid", 'Invalid value: "web.1": must not contain dots')],
    ),
    (
        "activeDeadlineSeconds",
        pod(activeDeadlineSeconds=0),
        [
            (
                "spec.activeDeadlineSeconds",
                "FieldValueInvalid",
                "Invalid value: 0: must be between 1 and 2147483647, inclusive",
            )
        ],
    ),
    (
        "nodeSelector value",
        pod(nodeSelector={"disk": "fast ssd"}),
        [("spec.nodeSelector", "FieldValueInvalid", 'Invalid value: "fast ssd": ' + LABEL_VALUE)],
    ),
    (
        "hostNetwork with a different hostPort",
        pod(
            hostNetwork=True,
            containers=[
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ],
        ),
        [
            (
                "spec.containers[0].ports[0].hostPort",
                "FieldValueInvalid",
                "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
            )
        ],
    ),
    (
        "runAsUser negative",
        pod(securityContext={"runAsUser": -1}),
        [
            (
                "spec.securityContext.runAsUser",
                "FieldValueInvalid",
                "Invalid value: -1: must be between 0 and 4294967295, inclusive",
            )
        ],
    ),
    (
        "toleration Exists with value",
        pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        [
            (
                "spec.tolerations[0].operator",
                "FieldValueInvalid",
                "Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
            )
        ],
    ),
    (
        "toleration empty key needs Exists",
        pod(tolerations=[{"operator": "Equal"}]),
        [
            (
                "spec.tolerations[0].operator",
                "FieldValueInvalid",
                'Invalid value: "Equal": operator must be Exists when `key` is empty, which means '
                '"match '
                'all values and all keys"',
            )
        ],
    ),
    (
        "toleration seconds need NoExecute",
        pod(
            tolerations=[
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}
            ]
        ),
        [
            (
                "spec.tolerations[0].effect",
                "FieldValueInvalid",
                "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
                "`tolerationSeconds` is "
                "set",
            )
        ],
    ),
    (
        "toleration effect",
        pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "Never"}]),
        [
            (
                "spec.tolerations[0].effect",
                "FieldValueNotSupported",
                'Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", '
                '"NoExecute"',
            )
        ],
    ),
    (
        "volume mount of an unknown volume",
        pod(
            containers=[
                {"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
            ]
        ),
        [("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", 'Not found: "data"')],
    ),
    (
        "duplicate mount paths",
        pod(
            volumes=[{"name": "a"}, {"name": "b"}],
            containers=[
                {
                    "name": "c",
                    "image": "x",
                    "volumeMounts": [
                        {"name": "a", "mountPath": "/d"},
                        {"name": "b", "mountPath": "/d"},
                    ],
                }
            ],
        ),
        [
            (
                "spec.containers[0].volumeMounts[1].mountPath",
                "FieldValueInvalid",
                'Invalid value: "/d": must be unique',
            )
        ],
    ),
    (
        "two volume sources",
        pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
        [
            (
                "spec.volumes[0].hostPath",
                "FieldValueForbidden",
                "Forbidden: may not specify more than 1 volume type",
            )
        ],
    ),
    (
        "duplicate volumes",
        pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
        [("spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "v"')],
    ),
    (
        "env name with =",
        pod(containers=[{"name": "a", "image": "x", "env": [{"name": "A=B", "value": "1"}]}]),
        [
            (
                "spec.containers[0].env[0].name",
                "FieldValueInvalid",
                'Invalid value: "A=B": a valid environment variable name must consist only of '
                "printable "
                "ASCII characters other than '='",
            )
        ],
    ),
    (
        "env valueFrom and value",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "env": [
                        {
                            "name": "A",
                            "value": "1",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }
                    ],
                }
            ]
        ),
        [
            (
                "spec.containers[0].env[0].valueFrom",
                "FieldValueInvalid",
                'Invalid value: "": may not be specified when `value` is not empty',
            )
        ],
    ),
    (
        "env fieldRef unsupported",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "env": [
                        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}
                    ],
                }
            ]
        ),
        [
            (
                "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                "FieldValueNotSupported",
                'Unsupported value: "spec.hostname": supported values: "metadata.name", '
                '"metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
                '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"',
            )
        ],
    ),
    (
        "requests above limits",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}},
                }
            ]
        ),
        [
            (
                "spec.containers[0].resources.requests",
                "FieldValueInvalid",
                'Invalid value: "2": must be less than or equal to cpu limit of 1500m',
            )
        ],
    ),
    (
        "negative memory",
        pod(containers=[{"name": "a", "image": "x", "resources": {"limits": {"memory": "-1Gi"}}}]),
        [
            (
                "spec.containers[0].resources.limits[memory]",
                "FieldValueInvalid",
                'Invalid value: "-1Gi": must be greater than or equal to 0',
            ),
            (
                "spec.containers[0].resources.requests[memory]",
                "FieldValueInvalid",
                'Invalid value: "-1Gi": must be greater than or equal to 0',
            ),
        ],
    ),
    (
        "unknown resource",
        pod(containers=[{"name": "a", "image": "x", "resources": {"limits": {"gpu": "1"}}}]),
        [
            (
                "spec.containers[0].resources.limits[gpu]",
                "FieldValueInvalid",
                'Invalid value: "gpu": must be a standard resource type or fully qualified',
            ),
            (
                "spec.containers[0].resources.limits[gpu]",
                "FieldValueInvalid",
                'Invalid value: "gpu": must be a standard resource for containers',
            ),
            (
                "spec.containers[0].resources.requests[gpu]",
                "FieldValueInvalid",
                'Invalid value: "gpu": must be a standard resource type or fully qualified',
            ),
            (
                "spec.containers[0].resources.requests[gpu]",
                "FieldValueInvalid",
                'Invalid value: "gpu": must be a standard resource for containers',
            ),
        ],
    ),
    (
        "extended resource request without limit",
        pod(
            containers=[
                {"name": "a", "image": "x", "resources": {"requests": {"example.com/gpu": "1"}}}
            ]
        ),
        [
            (
                "spec.containers[0].resources.limits",
                "FieldValueRequired",
                "Required value: Limit must be set for non overcommitable resources",
            )
        ],
    ),
    (
        "probe without handler",
        pod(containers=[{"name": "a", "image": "x", "livenessProbe": {"periodSeconds": 5}}]),
        [
            (
                "spec.containers[0].livenessProbe",
                "FieldValueRequired",
                "Required value: must specify a handler type",
            )
        ],
    ),
    (
        "probe with two handlers",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                }
            ]
        ),
        [
            (
                "spec.containers[0].readinessProbe.tcpSocket",
                "FieldValueForbidden",
                "Forbidden: may not specify more than 1 handler type",
            )
        ],
    ),
    (
        "liveness successThreshold",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2},
                }
            ]
        ),
        [
            (
                "spec.containers[0].livenessProbe.successThreshold",
                "FieldValueInvalid",
                "Invalid value: 2: must be 1",
            )
        ],
    ),
    (
        "probe port name",
        pod(
            containers=[
                {"name": "a", "image": "x", "readinessProbe": {"httpGet": {"port": "HTTP"}}}
            ]
        ),
        [
            (
                "spec.containers[0].readinessProbe.httpGet.port",
                "FieldValueInvalid",
                'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and '
                "hyphens (-)",
            ),
            (
                "spec.containers[0].readinessProbe.httpGet.port",
                "FieldValueInvalid",
                'Invalid value: "HTTP": must contain at least one letter (a-z)',
            ),
        ],
    ),
    (
        "probe on a plain init container",
        pod(
            initContainers=[
                {"name": "i", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}
            ]
        ),
        [
            (
                "spec.initContainers[0].readinessProbe",
                "FieldValueForbidden",
                "Forbidden: may not be set for init containers without restartPolicy=Always",
            )
        ],
    ),
    (
        "restartPolicy on a regular container",
        pod(containers=[{"name": "a", "image": "x", "restartPolicy": "Always"}]),
        [
            (
                "spec.containers[0].restartPolicy",
                "FieldValueForbidden",
                "Forbidden: may not be set for non-init containers",
            )
        ],
    ),
    (
        "init container restartPolicy",
        pod(initContainers=[{"name": "i", "image": "x", "restartPolicy": "Never"}]),
        [
            (
                "spec.initContainers[0].restartPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Never": supported values: "Always"',
            )
        ],
    ),
    (
        "scheduling gate name",
        pod(schedulingGates=[{"name": "bad gate"}]),
        [
            (
                "spec.schedulingGates[0]",
                "FieldValueInvalid",
                'Invalid value: "bad gate": ' + NAME_PART,
            )
        ],
    ),
    (
        "nodeName with scheduling gates",
        pod(nodeName="node-1", schedulingGates=[{"name": "example.com/wait"}]),
        [
            (
                "spec.nodeName",
                "FieldValueForbidden",
                "Forbidden: cannot be set until all schedulingGates have been cleared",
            )
        ],
    ),
    (
        "ephemeral containers on create",
        pod(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
        [("spec.ephemeralContainers", "FieldValueForbidden", "Forbidden: cannot be set on create")],
    ),
    (
        "hostAliases ip",
        pod(hostAliases=[{"ip": "10.0.0.256", "hostnames": ["a"]}]),
        [("spec.hostAliases[0].ip", "FieldValueInvalid", f'Invalid value: "10.0.0.256": {IP}')],
    ),
    (
        "preemptionPolicy",
        pod(preemptionPolicy="Always"),
        [
            (
                "spec.preemptionPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Always": supported values: "PreemptLowerPriority", "Never"',
            )
        ],
    ),
    (
        "os name",
        pod(os={"name": "plan9"}),
        [
            (
                "spec.os",
                "FieldValueNotSupported",
                'Unsupported value: "plan9": supported values: "linux", "windows"',
            )
        ],
    ),
    (
        "pod deletion cost",
        with_meta(pod(), annotations={"controller.kubernetes.io/pod-deletion-cost": "high"}),
        [
            (
                "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]",
                "FieldValueInvalid",
                'Invalid value: "high": must be a 32bit integer',
            )
        ],
    ),
    (
        "mirror pod without node",
        with_meta(pod(), annotations={"kubernetes.io/config.mirror": "x"}),
        [
            (
                "metadata.annotations[kubernetes.io/config.mirror]",
                "FieldValueInvalid",
                'Invalid value: "x": must set spec.nodeName if mirror pod annotation is set',
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "obj", "expected"), INVALID_PODS, ids=[n for n, _, _ in INVALID_PODS]
)
def test_invalid_pods(name: str, obj: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert create_errors("Pod", obj) == expected


def test_pod_termination_grace_period_required_when_not_defaulted() -> None:
    obj = ready("Pod", pod())
    del obj["spec"]["terminationGracePeriodSeconds"]
    assert triples(validate_create("Pod", obj)) == [
        ("spec.terminationGracePeriodSeconds", "FieldValueRequired", "Required value")
    ]


def test_pod_image_update_is_allowed() -> None:
    new = pod(containers=[{"name": "app", "image": "nginx:1.26"}])
    assert update_errors("Pod", new, pod()) == []


def test_pod_spec_change_is_forbidden_with_the_real_message() -> None:
    new = pod(nodeName="node-2")
    errs = update_errors("Pod", new, pod())
    assert len(errs) == 1
    field, reason, message = errs[0]
    assert (field, reason) == ("spec", "FieldValueForbidden")
    assert message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)\n"
    )
    assert '+ nodeName: "node-2"' in message


def test_pod_container_count_is_fixed() -> None:
    new = pod(containers=[{"name": "app", "image": "x"}, {"name": "b", "image": "y"}])
    assert update_errors("Pod", new, pod()) == [
        (
            "spec.containers",
            "FieldValueForbidden",
            "Forbidden: pod updates may not add or remove containers",
        )
    ]


def test_pod_active_deadline_rules() -> None:
    assert update_errors("Pod", pod(activeDeadlineSeconds=30), pod()) == []
    assert update_errors("Pod", pod(activeDeadlineSeconds=20), pod(activeDeadlineSeconds=30)) == []
    assert update_errors("Pod", pod(activeDeadlineSeconds=40), pod(activeDeadlineSeconds=30)) == [
        (
            "spec.activeDeadlineSeconds",
            "FieldValueInvalid",
            "Invalid value: 40: must be less than or equal to previous value",
        )
    ]
    assert update_errors("Pod", pod(), pod(activeDeadlineSeconds=30)) == [
        (
            "spec.activeDeadlineSeconds",
            "FieldValueInvalid",
            "Invalid value: null: must not update from a positive integer to nil value",
        )
    ]


def test_pod_tolerations_may_only_be_added() -> None:
    tol = {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
    old = pod(tolerations=[tol])
    added = pod(tolerations=[{**tol, "tolerationSeconds": 5}, {"key": "j", "operator": "Exists"}])
    assert update_errors("Pod", added, old) == []
    changed = pod(tolerations=[{**tol, "key": "other"}])
    assert update_errors("Pod", changed, old) == [
        (
            "spec.tolerations",
            "FieldValueForbidden",
            "Forbidden: existing toleration can not be modified except its tolerationSeconds",
        )
    ]


def test_pod_scheduling_gates_may_only_be_removed() -> None:
    old = pod(schedulingGates=[{"name": "a.io/x"}, {"name": "a.io/y"}])
    assert update_errors("Pod", pod(schedulingGates=[{"name": "a.io/y"}]), old) == []
    assert update_errors("Pod", pod(schedulingGates=[{"name": "a.io/z"}]), old) == [
        (
            "spec.schedulingGates[0].name",
            "FieldValueForbidden",
            "Forbidden: only deletion is allowed, but found new scheduling gate 'a.io/z'",
        )
    ]


def test_gated_pod_may_gain_node_selector_entries() -> None:
    gates = [{"name": "a.io/x"}]
    old = pod(schedulingGates=gates, nodeSelector={"zone": "a"})
    added = pod(schedulingGates=gates, nodeSelector={"zone": "a", "disk": "ssd"})
    assert update_errors("Pod", added, old) == []
    changed = pod(schedulingGates=gates, nodeSelector={"zone": "b"})
    assert update_errors("Pod", changed, old) == [
        (
            "spec.nodeSelector",
            "FieldValueInvalid",
            'Invalid value: {"zone":"b"}: only additions to spec.nodeSelector are allowed (no '
            "mutations or deletions)",
        )
    ]


def test_pod_negative_grace_period_may_become_one() -> None:
    assert (
        update_errors(
            "Pod", pod(terminationGracePeriodSeconds=1), pod(terminationGracePeriodSeconds=-5)
        )
        == []
    )


def _with_status(obj: Obj, **status: Any) -> Obj:
    obj = ready("Pod", obj)
    obj["status"].update(status)
    return obj


def status_errors(
    new_status: dict[str, Any], old_status: dict[str, Any] | None = None, **spec: Any
) -> list[tuple[str, str, str]]:
    old = _with_status(pod(**spec), **(old_status or {}))
    new = copy.deepcopy(old)
    new["status"].update(new_status)
    new["metadata"]["resourceVersion"] = "2"
    return triples(validate_status_update("Pod", new, old))


def test_pod_status_accepts_a_running_pod() -> None:
    assert (
        status_errors(
            {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "example.com/Custom", "status": "False"},
                ],
            }
        )
        == []
    )


def test_pod_status_ip_rules() -> None:
    assert status_errors({"podIPs": [{"ip": "10.244.1.300"}]}) == [
        ("status.podIPs[0]", "FieldValueInvalid", f'Invalid value: "10.244.1.300": {IP}')
    ]
    assert status_errors({"podIPs": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}) == [
        (
            "status.podIPs",
            "FieldValueInvalid",
            'Invalid value: [{"ip":"10.0.0.1"},{"ip":"10.0.0.2"}]: may specify no more than one IP '
            "for each IP family",
        )
    ]
    assert status_errors({"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}) == []
    assert status_errors({"hostIPs": [{"ip": "10.0.0.1"}]}) == [
        (
            "status.hostIPs[0].ip",
            "FieldValueInvalid",
            'Invalid value: "10.0.0.1": must be equal to `hostIP`',
        )
    ]


def test_pod_status_podip_is_authoritative() -> None:
    # As in v1 conversion: podIP wins over a disagreeing podIPs[0].
    assert status_errors({"podIP": "bad", "podIPs": [{"ip": "10.0.0.1"}]}) == [
        ("status.podIPs[0]", "FieldValueInvalid", f'Invalid value: "bad": {IP}')
    ]


def test_pod_status_condition_types() -> None:
    assert status_errors({"conditions": [{"type": "bad type", "status": "True"}]}) == [
        (
            "metadata.conditions[0].Type",
            "FieldValueInvalid",
            'Invalid value: "bad type": ' + NAME_PART,
        )
    ]


def test_pod_status_qos_is_immutable() -> None:
    assert status_errors({"qosClass": "Guaranteed"}) == [
        ("status.qosClass", "FieldValueInvalid", 'Invalid value: "Guaranteed": field is immutable')
    ]


def test_pod_status_terminated_container_stays_terminated() -> None:
    done = [{"name": "app", "state": {"terminated": {"exitCode": 0}}}]
    running = [{"name": "app", "state": {"running": {}}}]
    assert status_errors(
        {"containerStatuses": running}, {"containerStatuses": done}, restartPolicy="Never"
    ) == [
        (
            "status.containerStatuses[0].state",
            "FieldValueForbidden",
            "Forbidden: may not be transitioned to non-terminated state",
        )
    ]
    assert status_errors({"containerStatuses": running}, {"containerStatuses": done}) == []


# --- Service ----------------------------------------------------------------------------------

VALID_SERVICES: list[tuple[str, Obj]] = [
    ("cluster ip", service()),
    ("named target port", service(ports=[{"port": 80, "targetPort": "http"}])),
    (
        "two named ports",
        service(ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}]),
    ),
    (
        "same port, two protocols",
        service(
            ports=[{"name": "dns", "port": 53}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]
        ),
    ),
    ("explicit cluster ip", service(clusterIP="10.96.0.10")),
    ("headless", service(clusterIP="None")),
    ("headless without ports", service(clusterIP="None", ports=[])),
    ("headless without selector", service(clusterIP="None", selector=None)),
    ("node port", service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])),
    (
        "load balancer",
        service(
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.0.0/16 "],
        ),
    ),
    (
        "external name",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com."},
        },
    ),
    ("client ip affinity", service(sessionAffinity="ClientIP")),
    ("external ips", service(externalIPs=["192.0.2.10"])),
    ("traffic distribution", service(trafficDistribution="PreferClose")),
]


@pytest.mark.parametrize(("name", "svc"), VALID_SERVICES, ids=[n for n, _ in VALID_SERVICES])
def test_valid_services(name: str, svc: Obj) -> None:
    assert create_errors("Service", svc) == []


INVALID_SERVICES: list[tuple[str, Obj, list[tuple[str, str, str]]]] = [
    ("no ports", service(ports=[]), [("spec.ports", "FieldValueRequired", "Required value")]),
    (
        "unknown type",
        service(type="Internal"),
        [
            (
                "spec.type",
                "FieldValueNotSupported",
                'Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", '
                '"LoadBalancer", "NodePort"',
            )
        ],
    ),
    (
        "port zero",
        service(ports=[{"port": 0}]),
        [
            ("spec.ports[0].port", "FieldValueInvalid", "Invalid value: 0: " + PORT_RANGE),
            ("spec.ports[0].targetPort", "FieldValueInvalid", "Invalid value: 0: " + PORT_RANGE),
        ],
    ),
    (
        "target port too big",
        service(ports=[{"port": 80, "targetPort": 65536}]),
        [("spec.ports[0].targetPort", "FieldValueInvalid", "Invalid value: 65536: " + PORT_RANGE)],
    ),
    (
        "target port name",
        service(ports=[{"port": 80, "targetPort": "web_port"}]),
        [
            (
                "spec.ports[0].targetPort",
                "FieldValueInvalid",
                'Invalid value: "web_port": must contain only alpha-numeric characters (a-z, 0-9), '
                "and "
                "hyphens (-)",
            )
        ],
    ),
    (
        "protocol",
        service(ports=[{"port": 80, "protocol": "ICMP"}]),
        [
            (
                "spec.ports[0].protocol",
                "FieldValueNotSupported",
                'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
            )
        ],
    ),
    (
        "names required with two ports",
        service(ports=[{"port": 80}, {"name": "b", "port": 81}]),
        [("spec.ports[0].name", "FieldValueRequired", "Required value")],
    ),
    (
        "duplicate port names",
        service(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
        [("spec.ports[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')],
    ),
    (
        "port name not a label",
        service(ports=[{"name": "HTTP", "port": 80}]),
        [("spec.ports[0].name", "FieldValueInvalid", f'Invalid value: "HTTP": {DNS_LABEL}')],
    ),
    (
        "duplicate port and protocol",
        service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
        [("spec.ports[1]", "FieldValueDuplicate", 'Duplicate value: {"port":80,"protocol":"TCP"}')],
    ),
    (
        "cluster ip garbage",
        service(clusterIP="10.96.0.300"),
        [("spec.clusterIPs[0]", "FieldValueInvalid", f'Invalid value: "10.96.0.300": {IP}')],
    ),
    (
        "clusterIPs disagree",
        service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.11"]),
        [
            (
                "spec.clusterIPs",
                "FieldValueInvalid",
                'Invalid value: ["10.96.0.11"]: first value must match `clusterIP`',
            )
        ],
    ),
    (
        "two ipv4 cluster ips",
        service(
            clusterIP="10.96.0.10",
            clusterIPs=["10.96.0.10", "10.96.0.11"],
            ipFamilyPolicy="PreferDualStack",
        ),
        [
            (
                "spec.clusterIPs",
                "FieldValueInvalid",
                'Invalid value: ["10.96.0.10","10.96.0.11"]: may specify no more than one IP for '
                "each IP "
                "family",
            )
        ],
    ),
    (
        "family mismatch",
        service(clusterIP="fd00::10", ipFamilies=["IPv4"]),
        [
            (
                "spec.clusterIPs[0]",
                "FieldValueInvalid",
                'Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[0]`',
            )
        ],
    ),
    (
        "ip family",
        service(ipFamilies=["IPv5"]),
        [
            (
                "spec.ipFamilies[0]",
                "FieldValueNotSupported",
                'Unsupported value: "IPv5": supported values: "IPv4", "IPv6"',
            )
        ],
    ),
    (
        "ip family policy",
        service(ipFamilyPolicy="DualStack"),
        [
            (
                "spec.ipFamilyPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "DualStack": supported values: "PreferDualStack", '
                '"RequireDualStack", "SingleStack"',
            )
        ],
    ),
    (
        "headless node port",
        service(type="NodePort", clusterIP="None"),
        [
            (
                "spec.clusterIPs[0]",
                "FieldValueInvalid",
                "Invalid value: \"None\": may not be set to 'None' for NodePort services",
            )
        ],
    ),
    (
        "headless load balancer",
        service(type="LoadBalancer", clusterIP="None"),
        [
            (
                "spec.clusterIPs[0]",
                "FieldValueInvalid",
                "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
            )
        ],
    ),
    (
        "node port on cluster ip",
        service(ports=[{"port": 80, "nodePort": 30080}]),
        [
            (
                "spec.ports[0].nodePort",
                "FieldValueForbidden",
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            )
        ],
    ),
    (
        "duplicate node ports",
        service(
            type="NodePort",
            ports=[
                {"name": "a", "port": 80, "nodePort": 30080},
                {"name": "b", "port": 81, "nodePort": 30080},
            ],
        ),
        [("spec.ports[1].nodePort", "FieldValueDuplicate", "Duplicate value: 30080")],
    ),
    (
        "external traffic policy on cluster ip",
        service(externalTrafficPolicy="Local"),
        [
            (
                "spec.externalTrafficPolicy",
                "FieldValueInvalid",
                'Invalid value: "Local": may only be set for externally-accessible services',
            )
        ],
    ),
    (
        "external traffic policy value",
        service(type="NodePort", externalTrafficPolicy="Global"),
        [
            (
                "spec.externalTrafficPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Global": supported values: "Cluster", "Local"',
            )
        ],
    ),
    (
        "internal traffic policy value",
        service(internalTrafficPolicy="Node"),
        [
            (
                "spec.internalTrafficPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "Node": supported values: "Cluster", "Local"',
            )
        ],
    ),
    (
        "health check node port without Local",
        service(type="NodePort", healthCheckNodePort=30000),
        [
            (
                "spec.healthCheckNodePort",
                "FieldValueInvalid",
                "Invalid value: 30000: may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'",
            )
        ],
    ),
    (
        "session affinity value",
        service(sessionAffinity="Cookie"),
        [
            (
                "spec.sessionAffinity",
                "FieldValueNotSupported",
                'Unsupported value: "Cookie": supported values: "ClientIP", "None"',
            )
        ],
    ),
    (
        "affinity timeout",
        service(
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}},
        ),
        [
            (
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "FieldValueInvalid",
                "Invalid value: 86401: must be greater than 0 and less than 86400",
            )
        ],
    ),
    (
        "external ip loopback",
        service(externalIPs=["127.0.0.1"]),
        [
            (
                "spec.externalIPs[0]",
                "FieldValueInvalid",
                'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, '
                "::1/128)",
            )
        ],
    ),
    (
        "external ip garbage",
        service(externalIPs=["my-host"]),
        [("spec.externalIPs[0]", "FieldValueInvalid", f'Invalid value: "my-host": {IP}')],
    ),
    (
        "external ip unspecified",
        service(externalIPs=["0.0.0.0"]),
        [
            (
                "spec.externalIPs[0]",
                "FieldValueInvalid",
                'Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
            )
        ],
    ),
    (
        "source ranges on cluster ip",
        service(loadBalancerSourceRanges=["10.0.0.0/8"]),
        [
            (
                "spec.LoadBalancerSourceRanges",
                "FieldValueForbidden",
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )
        ],
    ),
    (
        "source range cidr",
        service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0"]),
        [
            (
                "spec.LoadBalancerSourceRanges[0]",
                "FieldValueInvalid",
                f'Invalid value: "10.0.0.0": {CIDR}',
            )
        ],
    ),
    (
        "selector label",
        service(selector={"app": "web server"}),
        [("spec.selector", "FieldValueInvalid", 'Invalid value: "web server": ' + LABEL_VALUE)],
    ),
    (
        "load balancer class on cluster ip",
        service(loadBalancerClass="example.com/lb"),
        [
            (
                "spec.loadBalancerClass",
                "FieldValueForbidden",
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )
        ],
    ),
    (
        "allocateLoadBalancerNodePorts on node port",
        service(type="NodePort", allocateLoadBalancerNodePorts=False),
        [
            (
                "spec.allocateLoadBalancerNodePorts",
                "FieldValueForbidden",
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )
        ],
    ),
    (
        "external name without name",
        service(type="ExternalName", ports=[]),
        [("spec.externalName", "FieldValueRequired", "Required value")],
    ),
    (
        "traffic distribution",
        service(trafficDistribution="Nearest"),
        [
            (
                "spec.trafficDistribution",
                "FieldValueNotSupported",
                'Unsupported value: "Nearest": supported values: "PreferClose"',
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "svc", "expected"), INVALID_SERVICES, ids=[n for n, _, _ in INVALID_SERVICES]
)
def test_invalid_services(name: str, svc: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert create_errors("Service", svc) == expected


def test_external_name_service_may_not_have_cluster_fields() -> None:
    svc = ready(
        "Service",
        {
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
    )
    svc["spec"]["clusterIPs"] = ["10.96.0.1"]
    svc["spec"]["ipFamilyPolicy"] = "SingleStack"
    assert triples(validate_create("Service", svc)) == [
        (
            "spec.clusterIPs",
            "FieldValueForbidden",
            "Forbidden: may not be set for ExternalName services",
        ),
        (
            "spec.ipFamilyPolicy",
            "FieldValueForbidden",
            "Forbidden: may not be set for ExternalName services",
        ),
    ]


def test_external_name_service_with_a_cluster_ip() -> None:
    svc = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.0.0.1"},
    }
    assert create_errors("Service", svc) == [
        (
            "spec.clusterIPs",
            "FieldValueForbidden",
            "Forbidden: may not be set for ExternalName services",
        )
    ]


def test_defaulted_fields_are_required_when_missing() -> None:
    svc = ready("Service", service(type="LoadBalancer"))
    for field in (
        "sessionAffinity",
        "internalTrafficPolicy",
        "externalTrafficPolicy",
        "allocateLoadBalancerNodePorts",
    ):
        del svc["spec"][field]
    assert triples(validate_create("Service", svc)) == [
        ("spec.sessionAffinity", "FieldValueRequired", "Required value"),
        # Upstream builds this one path without "spec".
        ("allocateLoadBalancerNodePorts", "FieldValueRequired", "Required value"),
        ("spec.externalTrafficPolicy", "FieldValueRequired", "Required value"),
        ("spec.internalTrafficPolicy", "FieldValueRequired", "Required value"),
    ]


def test_service_cluster_ip_is_immutable() -> None:
    old = service(clusterIP="10.96.0.10")
    new = service(clusterIP="10.96.0.11")
    assert update_errors("Service", new, old) == [
        (
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            'Invalid value: ["10.96.0.11"]: may not change once set',
        )
    ]


def test_service_cluster_ip_may_change_through_external_name() -> None:
    old = service(clusterIP="10.96.0.10")
    to_external = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "x.example.com"},
    }
    assert update_errors("Service", to_external, old) == []
    assert update_errors("Service", service(clusterIP="10.96.0.12"), to_external) == []


def test_service_update_other_fields() -> None:
    old = service(clusterIP="10.96.0.10")
    new = service(clusterIP="10.96.0.10", ports=[{"port": 8080}], selector={"app": "v2"})
    assert update_errors("Service", new, old) == []


def test_service_cluster_ip_may_not_be_unset() -> None:
    old = ready("Service", service(clusterIP="10.96.0.10"))
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["spec"]["clusterIP"] = ""
    new["spec"]["clusterIPs"] = []
    assert triples(validate_update("Service", new, old)) == [
        (
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            "Invalid value: []: primary clusterIP can not be unset",
        )
    ]


def test_service_load_balancer_class_is_immutable() -> None:
    old = service(type="LoadBalancer", loadBalancerClass="example.com/a")
    new = service(type="LoadBalancer", loadBalancerClass="example.com/b")
    assert update_errors("Service", new, old) == [
        (
            "spec.loadBalancerClass",
            "FieldValueInvalid",
            'Invalid value: "example.com/b": may not change once set',
        )
    ]


def _lb_status(ingress: list[Obj], svc_type: str = "LoadBalancer") -> list[tuple[str, str, str]]:
    old = ready("Service", service(type=svc_type))
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["status"] = {"loadBalancer": {"ingress": ingress}}
    return triples(validate_status_update("Service", new, old))


def test_service_status_load_balancer_ingress() -> None:
    assert _lb_status([{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]) == []
    assert _lb_status([{"ip": "192.0.2.300", "ipMode": "VIP"}]) == [
        (
            "status.loadBalancer.ingress[0].ip",
            "FieldValueInvalid",
            f'Invalid value: "192.0.2.300": {IP}',
        )
    ]
    assert _lb_status([{"ip": "192.0.2.1"}]) == [
        (
            "status.loadBalancer.ingress[0].ipMode",
            "FieldValueRequired",
            "Required value: must be specified when `ip` is set",
        )
    ]
    assert _lb_status([{"hostname": "10.0.0.1"}]) == [
        (
            "status.loadBalancer.ingress[0].hostname",
            "FieldValueInvalid",
            'Invalid value: "10.0.0.1": must be a DNS name, not an IP address',
        )
    ]
    assert _lb_status([{"ip": "192.0.2.1", "ipMode": "VIP"}], svc_type="ClusterIP") == [
        (
            "status.loadBalancer.ingress",
            "FieldValueForbidden",
            "Forbidden: may only be used when `spec.type` is 'LoadBalancer'",
        )
    ]


# --- Node -------------------------------------------------------------------------------------


def test_valid_node() -> None:
    obj = node(
        podCIDR="10.244.1.0/24",
        taints=[
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "db", "effect": "NoExecute"},
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        ],
    )
    obj["status"] = {
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "addresses": [
            {"type": "InternalIP", "address": "10.0.0.11"},
            {"type": "Hostname", "address": "node-1"},
        ],
    }
    assert create_errors("Node", obj) == []
    assert create_errors("Node", node(podCIDRs=["10.244.1.0/24", "fd00:10:244:1::/64"])) == []


INVALID_NODES: list[tuple[str, Obj, list[tuple[str, str, str]]]] = [
    (
        "podCIDR",
        node(podCIDR="10.244.1.0/33"),
        [("spec.podCIDRs[0]", "FieldValueInvalid", f'Invalid value: "10.244.1.0/33": {CIDR}')],
    ),
    (
        "two ipv4 podCIDRs",
        node(podCIDRs=["10.244.1.0/24", "10.244.2.0/24"]),
        [
            (
                "spec.podCIDRs",
                "FieldValueInvalid",
                'Invalid value: ["10.244.1.0/24","10.244.2.0/24"]: may specify no more than one '
                "CIDR for "
                "each IP family",
            )
        ],
    ),
    # Upstream roots taint paths at metadata; so does the real error.
    (
        "taint effect missing",
        node(taints=[{"key": "k"}]),
        [("metadata.taints[0].effect", "FieldValueRequired", "Required value")],
    ),
    (
        "taint effect",
        node(taints=[{"key": "k", "effect": "NoRun"}]),
        [
            (
                "metadata.taints[0].effect",
                "FieldValueNotSupported",
                'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", '
                '"NoExecute"',
            )
        ],
    ),
    (
        "taint key",
        node(taints=[{"key": "bad key", "effect": "NoSchedule"}]),
        [("metadata.taints[0].key", "FieldValueInvalid", 'Invalid value: "bad key": ' + NAME_PART)],
    ),
    (
        "taint value",
        node(taints=[{"key": "k", "value": "a b", "effect": "NoSchedule"}]),
        [("metadata.taints[0].value", "FieldValueInvalid", 'Invalid value: "a b": ' + LABEL_VALUE)],
    ),
    (
        "duplicate taint",
        node(
            taints=[
                {"key": "k", "effect": "NoSchedule"},
                {"key": "k", "value": "v", "effect": "NoSchedule"},
            ]
        ),
        [
            (
                "metadata.taints[1]",
                "FieldValueDuplicate",
                'Duplicate value: {"effect":"NoSchedule","key":"k","value":"v"}: taints must be '
                "unique by "
                "key and effect pair",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "obj", "expected"), INVALID_NODES, ids=[n for n, _, _ in INVALID_NODES]
)
def test_invalid_nodes(name: str, obj: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert create_errors("Node", obj) == expected


def test_node_pod_cidr_may_be_set_once() -> None:
    assert update_errors("Node", node(podCIDR="10.244.1.0/24"), node()) == []
    assert update_errors("Node", node(podCIDR="10.244.2.0/24"), node(podCIDR="10.244.1.0/24")) == [
        (
            "spec.podCIDRs",
            "FieldValueForbidden",
            'Forbidden: node updates may not change podCIDR except from "" to valid',
        )
    ]
    assert update_errors("Node", node(), node(podCIDR="10.244.1.0/24")) == [
        (
            "spec.podCIDRs",
            "FieldValueForbidden",
            'Forbidden: node updates may not change podCIDR except from "" to valid',
        )
    ]


def test_node_provider_id_may_be_set_once() -> None:
    assert update_errors("Node", node(providerID="kind://a"), node()) == []
    assert update_errors("Node", node(providerID="kind://b"), node(providerID="kind://a")) == [
        (
            "spec.providerID",
            "FieldValueForbidden",
            'Forbidden: node updates may not change providerID except from "" to valid',
        )
    ]


def test_node_status_duplicate_addresses() -> None:
    old = ready("Node", node())
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    address = {"type": "InternalIP", "address": "10.0.0.11"}
    new["status"] = {"addresses": [address, dict(address)]}
    assert triples(validate_status_update("Node", new, old)) == [
        (
            "status.addresses[1]",
            "FieldValueDuplicate",
            'Duplicate value: {"address":"10.0.0.11","type":"InternalIP"}',
        )
    ]


# --- Namespace --------------------------------------------------------------------------------


def test_valid_namespace() -> None:
    assert create_errors("Namespace", namespace()) == []
    assert (
        create_errors("Namespace", namespace(labels={"kubernetes.io/metadata.name": "team-a"}))
        == []
    )


def test_namespace_name_label_must_match() -> None:
    obj = ready("Namespace", namespace())
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = "other"
    assert triples(validate_create("Namespace", obj)) == [
        (
            "metadata.labels[kubernetes.io/metadata.name]",
            "FieldValueInvalid",
            'Invalid value: {"kubernetes.io/metadata.name":"other"}: must be \'team-a\'',
        )
    ]


def test_namespace_spec_finalizers() -> None:
    obj = ready("Namespace", namespace())
    obj["spec"]["finalizers"].append("custom")
    assert triples(validate_create("Namespace", obj)) == [
        (
            "spec.finalizers",
            "FieldValueInvalid",
            'Invalid value: "custom": name is neither a standard finalizer name nor is it fully '
            "qualified",
        )
    ]


def test_namespace_status_phase_follows_deletion() -> None:
    old = ready("Namespace", namespace())
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["status"]["phase"] = "Terminating"
    assert triples(validate_status_update("Namespace", new, old)) == [
        (
            "status.Phase",
            "FieldValueInvalid",
            "Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty",
        )
    ]
    deleting = copy.deepcopy(old)
    deleting["metadata"]["deletionTimestamp"] = "2026-03-01T00:00:00Z"
    later = copy.deepcopy(deleting)
    later["metadata"]["resourceVersion"] = "3"
    assert triples(validate_status_update("Namespace", later, deleting)) == [
        (
            "status.Phase",
            "FieldValueInvalid",
            "Invalid value: \"Active\": may only be 'Terminating' if `deletionTimestamp` is not "
            "empty",
        )
    ]


# --- EndpointSlice ----------------------------------------------------------------------------


def test_valid_endpoint_slices() -> None:
    assert create_errors("EndpointSlice", slice_()) == []
    assert (
        create_errors(
            "EndpointSlice",
            slice_(
                addressType="IPv6",
                endpoints=[
                    {
                        "addresses": ["fd00::5"],
                        "hostname": "web-0",
                        "nodeName": "node-1",
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "hints": {"forZones": [{"name": "zone-a"}]},
                    }
                ],
                ports=[{"port": 80}, {"name": "metrics", "port": 9090}, {"name": "all"}],
            ),
        )
        == []
    )
    assert (
        create_errors(
            "EndpointSlice",
            slice_(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}]),
        )
        == []
    )
    assert create_errors("EndpointSlice", slice_(endpoints=[], ports=[])) == []


INVALID_SLICES: list[tuple[str, Obj, list[tuple[str, str, str]]]] = [
    (
        "address type missing",
        slice_(addressType=""),
        [("addressType", "FieldValueRequired", "Required value")],
    ),
    (
        "address type",
        slice_(addressType="IP"),
        [
            (
                "addressType",
                "FieldValueNotSupported",
                'Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"',
            )
        ],
    ),
    (
        "no addresses",
        slice_(endpoints=[{"addresses": []}]),
        [
            (
                "endpoints[0].addresses",
                "FieldValueRequired",
                "Required value: must contain at least 1 address",
            )
        ],
    ),
    (
        "ipv6 in ipv4 slice",
        slice_(endpoints=[{"addresses": ["fd00::5"]}]),
        [
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "fd00::5": must be a valid IPv4 address',
            )
        ],
    ),
    (
        "garbage address",
        slice_(endpoints=[{"addresses": ["web"]}]),
        [
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "web": must be a valid IPv4 address',
            ),
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "web": must be a valid IP address',
            ),
        ],
    ),
    (
        "loopback address",
        slice_(endpoints=[{"addresses": ["127.0.0.1"]}]),
        [
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, '
                "::1/128)",
            )
        ],
    ),
    (
        "link-local address",
        slice_(endpoints=[{"addresses": ["169.254.169.254"]}]),
        [
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "169.254.169.254": may not be in the link-local range '
                "(169.254.0.0/16, "
                "fe80::/10)",
            )
        ],
    ),
    (
        "fqdn with one label",
        slice_(addressType="FQDN", endpoints=[{"addresses": ["db"]}]),
        [
            (
                "endpoints[0].addresses[0]",
                "FieldValueInvalid",
                'Invalid value: "db": should be a domain with at least two segments separated by '
                "dots",
            )
        ],
    ),
    (
        "node name",
        slice_(endpoints=[{"addresses": ["10.0.0.5"], "nodeName": "Node_1"}]),
        [
            (
                "endpoints[0].nodeName",
                "FieldValueInvalid",
                f'Invalid value: "Node_1": {DNS_SUBDOMAIN}',
            )
        ],
    ),
    (
        "hostname",
        slice_(endpoints=[{"addresses": ["10.0.0.5"], "hostname": "web.0"}]),
        [
            (
                "endpoints[0].hostname",
                "FieldValueInvalid",
                'Invalid value: "web.0": must not contain dots',
            )
        ],
    ),
    (
        "port name",
        slice_(ports=[{"name": "HTTP", "port": 80}]),
        [("ports[0].name", "FieldValueInvalid", f'Invalid value: "HTTP": {DNS_LABEL}')],
    ),
    (
        "duplicate port names",
        slice_(ports=[{"port": 80}, {"port": 81}]),
        [("ports[1].name", "FieldValueDuplicate", 'Duplicate value: ""')],
    ),
    (
        "port protocol",
        slice_(ports=[{"name": "a", "port": 80, "protocol": "HTTP"}]),
        [
            (
                "ports[0].protocol",
                "FieldValueNotSupported",
                'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
            )
        ],
    ),
    (
        "duplicate zone hints",
        slice_(
            endpoints=[
                {"addresses": ["10.0.0.5"], "hints": {"forZones": [{"name": "a"}, {"name": "a"}]}}
            ]
        ),
        [("endpoints[0].hints.forZones[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')],
    ),
    (
        "service name label",
        with_meta(slice_(), labels={"kubernetes.io/service-name": "web svc"}),
        [("metadata.labels", "FieldValueInvalid", 'Invalid value: "web svc": ' + LABEL_VALUE)],
    ),
]


@pytest.mark.parametrize(
    ("name", "obj", "expected"), INVALID_SLICES, ids=[n for n, _, _ in INVALID_SLICES]
)
def test_invalid_endpoint_slices(name: str, obj: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert create_errors("EndpointSlice", obj) == expected


def _too_many(obj: Obj) -> list[tuple[str, str, str, Any]]:
    # Compared without FieldError.message(): errors.py leaves the count out of "Too many"
    # (Go prints "Too many: 1001: must have at most 1000 items").
    errs = validate_create("EndpointSlice", ready("EndpointSlice", obj))
    return [(e.field, str(e.type), e.detail, e.bad_value) for e in errs]


def test_endpoint_slice_endpoint_count() -> None:
    many = [{"addresses": [f"10.1.{i // 250}.{i % 250 + 1}"]} for i in range(1001)]
    assert _too_many(slice_(endpoints=many)) == [
        ("endpoints", "FieldValueTooMany", "must have at most 1000 items", 1001)
    ]
    assert _too_many(slice_(endpoints=many[:1000])) == []


def test_endpoint_slice_address_count() -> None:
    addresses = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(101)]
    assert _too_many(slice_(endpoints=[{"addresses": addresses}])) == [
        ("endpoints[0].addresses", "FieldValueTooMany", "must have at most 100 items", 101)
    ]


def test_endpoint_slice_address_type_is_immutable() -> None:
    old = slice_()
    new = slice_(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}])
    assert update_errors("EndpointSlice", new, old) == [
        ("addressType", "FieldValueInvalid", 'Invalid value: "FQDN": field is immutable')
    ]


# --- Event ------------------------------------------------------------------------------------


def test_valid_events() -> None:
    assert create_errors("Event", event()) == []
    cluster_scoped = event(involvedObject={"kind": "Node", "name": "node-1"})
    assert create_errors("Event", cluster_scoped) == []


def test_event_namespace_must_match_involved_object() -> None:
    assert create_errors(
        "Event", event(involvedObject={"kind": "Pod", "name": "web", "namespace": "other"})
    ) == [
        (
            "involvedObject.namespace",
            "FieldValueInvalid",
            'Invalid value: "other": does not match event.namespace',
        )
    ]
    other_ns = with_meta(event(involvedObject={"kind": "Node", "name": "n"}), namespace="team-a")
    assert create_errors("Event", other_ns) == [
        (
            "involvedObject.namespace",
            "FieldValueInvalid",
            'Invalid value: "": does not match event.namespace',
        )
    ]


def test_new_style_event_fields() -> None:
    obj = event(eventTime="2026-01-01T00:00:00.000000Z", reason="", message="m" * 1025)
    assert create_errors("Event", obj) == [
        ("reportingController", "FieldValueRequired", "Required value"),
        # The empty controller name also fails the qualified-name check, twice, as upstream.
        (
            "reportingController",
            "FieldValueInvalid",
            'Invalid value: "": name part must be non-empty',
        ),
        ("reportingController", "FieldValueInvalid", 'Invalid value: "": ' + NAME_PART),
        ("reportingInstance", "FieldValueRequired", "Required value"),
        ("action", "FieldValueRequired", "Required value"),
        ("reason", "FieldValueRequired", "Required value"),
        ("message", "FieldValueInvalid", 'Invalid value: "": can have at most 1024 characters'),
    ]
    good = event(
        eventTime="2026-01-01T00:00:00.000000Z",
        reportingComponent="example.com/ctl",
        reportingInstance="ctl-1",
        action="Sync",
    )
    assert create_errors("Event", good) == []


def test_event_metadata_is_checked_after_its_own_rules() -> None:
    obj = with_meta(event(), labels={"a b": "c"})
    assert create_errors("Event", obj) == [
        ("metadata.labels", "FieldValueInvalid", 'Invalid value: "a b": ' + NAME_PART)
    ]


def test_event_update() -> None:
    assert update_errors("Event", event(count=2, message="again"), event()) == []
