"""Schema pruning: unknown fields removed and named as kube-apiserver names them, type errors."""

from __future__ import annotations

import copy
import glob
from typing import Any

import pytest
import yaml
from weir_local.apiserver.schema import ROOT_MODELS, prune

Obj = dict[str, Any]

VALID: list[tuple[str, Obj]] = [
    (
        "Pod",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web"},
                "annotations": {"a": "b"},
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "rs",
                        "uid": "1",
                        "controller": True,
                    }
                ],
                "managedFields": [
                    {
                        "manager": "kubectl",
                        "operation": "Apply",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {"f:containers": {}}},
                    }
                ],
            },
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {
                            "limits": {"cpu": 1, "memory": "1Gi"},
                            "requests": {"cpu": "0.5"},
                        },
                        "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                        "livenessProbe": {"tcpSocket": {"port": 80}},
                        "env": [
                            {
                                "name": "A",
                                "valueFrom": {
                                    "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                                },
                            }
                        ],
                    }
                ],
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}],
                "securityContext": {"runAsUser": 1000, "supplementalGroups": [1, 2]},
                "terminationGracePeriodSeconds": 30,
                "hostNetwork": False,
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            },
        },
    ),
    (
        "Service",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {
                "ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        },
    ),
    (
        "Node",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "10.244.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "capacity": {"cpu": "4", "pods": 110},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            },
        },
    ),
    (
        "Namespace",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "ns"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        },
    ),
    (
        "Event",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Started",
            "count": 3,
            "eventTime": "2026-01-01T00:00:00.123456Z",
            "reportingComponent": "kubelet",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:00.000000Z"},
        },
    ),
    (
        "EndpointSlice",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "s", "namespace": "d"},
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.0.0.1"],
                    "conditions": {"ready": True},
                    "hints": {"forZones": [{"name": "a"}]},
                }
            ],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        },
    ),
    (
        "NetworkPolicy",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "np", "namespace": "d"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": []}}],
                        "ports": [{"port": "http"}, {"port": 80, "endPort": 90}],
                    }
                ],
            },
        },
    ),
]


@pytest.mark.parametrize(("kind", "obj"), VALID, ids=[k for k, _ in VALID])
def test_valid_objects_are_untouched(kind: str, obj: Obj) -> None:
    before = copy.deepcopy(obj)
    result = prune(kind, obj)
    assert result.unknown_fields == []
    assert result.type_errors == []
    assert obj == before


def test_conformance_policies_decode_cleanly() -> None:
    paths = sorted(glob.glob("/work/shared/conformance/netpol/cases/*.yaml"))
    assert paths
    for path in paths:
        with open(path) as f:
            case = yaml.safe_load(f)
        for step in case["steps"]:
            if "apply_policy" in step:
                result = prune("NetworkPolicy", step["apply_policy"])
                assert (result.unknown_fields, result.type_errors) == ([], []), path


def test_unknown_fields_at_every_level_are_removed_and_named() -> None:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "extra": 1,
        "metadata": {"name": "p", "labelz": {"a": "b"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "x"},
                {
                    "name": "b",
                    "image": "y",
                    "foo": "bar",
                    "ports": [{"containerPort": 80, "hostIp": "1.2.3.4"}],
                },
            ],
            "Containers": [],
            "securityContext": {"runAsUser": 1, "privileged": True},
        },
    }
    result = prune("Pod", pod)
    assert result.unknown_fields == [
        "extra",
        "metadata.labelz",
        "spec.containers[1].foo",
        "spec.containers[1].ports[0].hostIp",
        "spec.Containers",
        "spec.securityContext.privileged",
    ]
    assert result.type_errors == []
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "y", "ports": [{"containerPort": 80}]},
            ],
            "securityContext": {"runAsUser": 1},
        },
    }


def test_unknown_fields_in_network_policy() -> None:
    np: Obj = {
        "metadata": {"name": "n"},
        "spec": {
            "podSelector": {"matchLabel": {"a": "b"}},
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "exclude": ["10.1.0.0/16"]}}],
                    "port": [{"port": 80}],
                }
            ],
            "egres": [],
        },
    }
    result = prune("NetworkPolicy", np)
    assert result.unknown_fields == [
        "spec.podSelector.matchLabel",
        "spec.ingress[0].from[0].ipBlock.exclude",
        "spec.ingress[0].port",
        "spec.egres",
    ]
    assert np["spec"] == {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
    }


def test_status_fields_are_known() -> None:
    node: Obj = {"status": {"nodeInfo": {"kubeletVersion": "v1.35.0", "bogus": 1}}}
    assert prune("Node", node).unknown_fields == ["status.nodeInfo.bogus"]


def test_nulls_are_dropped_silently() -> None:
    svc: Obj = {
        "metadata": {"name": "s", "labels": None},
        "spec": {"clusterIP": None, "ports": [{"port": 80}]},
    }
    result = prune("Service", svc)
    assert (result.unknown_fields, result.type_errors) == ([], [])
    assert svc == {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}


def test_null_items_become_zero_values() -> None:
    pod: Obj = {
        "metadata": {"labels": {"a": None}, "finalizers": [None]},
        "spec": {"containers": [None]},
    }
    result = prune("Pod", pod)
    assert (result.unknown_fields, result.type_errors) == ([], [])
    assert pod == {
        "metadata": {"labels": {"a": ""}, "finalizers": [""]},
        "spec": {"containers": [{}]},
    }


TYPE_ERRORS: list[tuple[str, Obj, str]] = [
    (
        "Pod",
        {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}},
        "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports."
        "containerPort of type int32",
    ),
    (
        "Pod",
        {"spec": {"containers": {"name": "a"}}},
        "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type "
        "[]v1.Container",
    ),
    (
        "Pod",
        {"spec": []},
        "json: cannot unmarshal array into Go struct field Pod.spec of type v1.PodSpec",
    ),
    (
        "Pod",
        {"spec": {"hostNetwork": "true"}},
        "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool",
    ),
    (
        "Pod",
        {"spec": {"terminationGracePeriodSeconds": 1.5}},
        "json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec."
        "terminationGracePeriodSeconds of type int64",
    ),
    (
        "Pod",
        {"spec": {"priority": True}},
        "json: cannot unmarshal bool into Go struct field PodSpec.spec.priority of type int32",
    ),
    (
        "Pod",
        {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 2**31}]}]}},
        "json: cannot unmarshal number 2147483648 into Go struct field "
        "ContainerPort.spec.containers."
        "ports.containerPort of type int32",
    ),
    (
        "Pod",
        {"metadata": {"labels": {"version": 1}}},
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type "
        "string",
    ),
    (
        "Pod",
        {"metadata": {"finalizers": "a"}},
        "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.finalizers of type "
        "[]string",
    ),
    (
        "Pod",
        {"metadata": {"name": 5}},
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type "
        "string",
    ),
    (
        "Pod",
        {"spec": {"nodeSelector": ["a"]}},
        "json: cannot unmarshal array into Go struct field PodSpec.spec.nodeSelector of type "
        "map[string]string",
    ),
    (
        "Pod",
        {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "lots"}}}]}},
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ),
    (
        "Pod",
        {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": [1]}}}]}},
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ),
    (
        "Pod",
        {"spec": {"containers": [{"name": "a", "resources": {"limits": ["1"]}}]}},
        "json: cannot unmarshal array into Go struct field ResourceRequirements.spec.containers."
        "resources.limits of type v1.ResourceList",
    ),
    (
        "Pod",
        {"spec": {"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "big"}}]}},
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ),
    (
        "Pod",
        {"metadata": {"creationTimestamp": "yesterday"}},
        'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as '
        '"2006"',
    ),
    (
        "Pod",
        {"metadata": {"creationTimestamp": 5}},
        "json: cannot unmarshal number into Go value of type string",
    ),
    (
        "Service",
        {"spec": {"ports": [{"port": 80, "targetPort": {"name": "http"}}]}},
        "json: cannot unmarshal object into Go struct field ServicePort.spec.ports.targetPort of "
        "type intstr.IntOrString",
    ),
    (
        "Service",
        {"spec": {"ports": [{"port": 80, "targetPort": 8080.5}]}},
        "json: cannot unmarshal number into Go struct field ServicePort.spec.ports.targetPort of "
        "type intstr.IntOrString",
    ),
    (
        "NetworkPolicy",
        {"spec": {"ingress": [{"ports": [{"port": True}]}]}},
        "json: cannot unmarshal bool into Go struct field "
        "NetworkPolicyPort.spec.ingress.ports.port "
        "of type intstr.IntOrString",
    ),
    (
        "NetworkPolicy",
        {"spec": {"ingress": {"from": []}}},
        "json: cannot unmarshal object into Go struct field NetworkPolicySpec.spec.ingress of type "
        "[]v1.NetworkPolicyIngressRule",
    ),
    (
        "NetworkPolicy",
        {"spec": {"policyTypes": "Ingress"}},
        "json: cannot unmarshal string into Go struct field NetworkPolicySpec.spec.policyTypes of "
        "type []string",
    ),
    (
        "NetworkPolicy",
        {"spec": {"egress": [{"ports": [{"port": 80, "endPort": "90"}]}]}},
        "json: cannot unmarshal string into Go struct field NetworkPolicyPort.spec.egress.ports."
        "endPort of type int32",
    ),
    (
        "EndpointSlice",
        {"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}]},
        "json: cannot unmarshal string into Go struct field "
        "EndpointConditions.endpoints.conditions."
        "ready of type bool",
    ),
    (
        "EndpointSlice",
        {"ports": [{"port": "80"}]},
        "json: cannot unmarshal string into Go struct field EndpointPort.ports.port of type int32",
    ),
    (
        "Event",
        {"count": "3"},
        "json: cannot unmarshal string into Go struct field Event.count of type int32",
    ),
    (
        "Node",
        {"spec": {"unschedulable": 1}},
        "json: cannot unmarshal number into Go struct field NodeSpec.spec.unschedulable of type "
        "bool",
    ),
]


@pytest.mark.parametrize(
    ("kind", "obj", "message"),
    TYPE_ERRORS,
    ids=[f"{i}-{m[:50]}" for i, (_, _, m) in enumerate(TYPE_ERRORS)],
)
def test_type_errors(kind: str, obj: Obj, message: str) -> None:
    result = prune(kind, obj)
    assert result.type_errors == [message]
    assert result.unknown_fields == []


def test_every_type_error_is_reported() -> None:
    pod: Obj = {"spec": {"hostNetwork": "yes", "containers": [{"name": 1, "image": 2}]}}
    assert len(prune("Pod", pod).type_errors) == 3


def test_quantity_fields_accept_strings_and_numbers() -> None:
    node: Obj = {
        "status": {
            "capacity": {"cpu": 4, "memory": "8Gi", "pods": 110.0},
            "allocatable": {"cpu": "3500m"},
        }
    }
    assert prune("Node", node).type_errors == []


def test_every_root_model_is_walkable() -> None:
    for kind in ROOT_MODELS:
        assert prune(kind, {"apiVersion": "v1", "kind": kind, "metadata": {}}).unknown_fields == []


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported kind"):
        prune("Deployment", {})
