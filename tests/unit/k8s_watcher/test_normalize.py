"""Normalization of API objects into weir.models, including what it must refuse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from weir.labels import Operator
from weir.models import PolicyType, Protocol, ServiceType, SessionAffinity, TrafficPolicy
from weir_k8s_watcher.normalize import NormalizeError, normalize

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance" / "netpol" / "cases"

POD: dict[str, Any] = {
    "metadata": {
        "name": "a",
        "namespace": "x",
        "uid": "u-1",
        "resourceVersion": "41",
        "labels": {"pod": "a", "pod-template-hash": "abc"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "kubernetes.io/egress-bandwidth": "10M",
            "weir.io/trace": "on",
        },
    },
    "spec": {
        "nodeName": "node-1",
        "containers": [
            {
                "name": "c",
                "image": "i",
                "ports": [
                    {"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"},
                    {"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"},
                    {"containerPort": 82},
                ],
            },
        ],
    },
    "status": {
        "phase": "Running",
        "podIP": "10.244.0.5",
        "podIPs": [{"ip": "10.244.0.5"}],
        "hostIP": "172.18.0.2",
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ],
    },
}


def test_pod() -> None:
    pod = normalize("Pod", POD)
    assert pod.meta.name == "a" and pod.meta.namespace == "x"
    assert pod.meta.annotations == {"kubernetes.io/egress-bandwidth": "10M", "weir.io/trace": "on"}
    assert pod.node_name == "node-1" and pod.pod_ips == ("10.244.0.5",)
    assert pod.ready and not pod.terminating and pod.phase == "Running"
    assert [(p.name, p.port, p.protocol) for p in pod.ports] == [
        ("serve-80-tcp", 80, Protocol.TCP),
        ("serve-81-udp", 81, Protocol.UDP),
        ("", 82, Protocol.TCP),
    ]


def test_pending_and_terminating_pods() -> None:
    pending = normalize("Pod", {"metadata": {"name": "p", "namespace": "x"}, "spec": {}})
    assert pending.node_name == "" and pending.pod_ips == () and not pending.ready
    assert pending.phase == "Pending"
    gone = dict(POD, metadata={**POD["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"})
    assert normalize("Pod", gone).terminating


def test_status_noise_does_not_change_the_model() -> None:
    noisy = {
        **POD,
        "status": {
            **POD["status"],
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": [{"name": "c", "restartCount": 3}],
        },
    }
    noisy["metadata"] = {
        **POD["metadata"],
        "annotations": {**POD["metadata"]["annotations"], "controller.example/seen": "now"},
    }
    assert normalize("Pod", noisy) == normalize("Pod", POD)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {"namespace": "x"}}, "metadata.name"),
        ({"metadata": {"name": "a"}}, "metadata.namespace"),
        ({**POD, "status": {"podIP": "10.0.0.300"}}, "not an IP"),
        (
            {**POD, "spec": {"containers": [{"ports": [{"containerPort": "80"}]}]}},
            r"containers\[0\].ports\[0\].containerPort",
        ),
        (
            {
                **POD,
                "spec": {"containers": [{"ports": [{"containerPort": 80, "protocol": "ICMP"}]}]},
            },
            "protocol",
        ),
        ({**POD, "metadata": {**POD["metadata"], "labels": {"a": 1}}}, "labels"),
        ({**POD, "spec": {"containers": {"oops": 1}}}, "containers must be a list"),
    ],
)
def test_unusable_pods_are_refused_with_the_field(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(NormalizeError, match=message):
        normalize("Pod", obj)


def test_service() -> None:
    svc = normalize(
        "Service",
        {
            "metadata": {"name": "web", "namespace": "x"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000,
                "externalIPs": ["192.0.2.10"],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}},
        },
    )
    assert svc.type is ServiceType.LOAD_BALANCER and svc.cluster_ips == ("10.96.0.10",)
    assert not svc.headless and svc.selector == {"app": "web"}
    assert svc.ports[0].target_port == "http" and svc.ports[0].node_port == 30080
    assert svc.ports[1].target_port == 53 and svc.ports[1].protocol is Protocol.UDP
    assert svc.session_affinity is SessionAffinity.CLIENT_IP
    assert svc.affinity_timeout_seconds == 60
    assert svc.external_traffic_policy is TrafficPolicy.LOCAL
    assert svc.internal_traffic_policy is TrafficPolicy.CLUSTER
    assert svc.load_balancer_ips == ("198.51.100.1",) and svc.external_ips == ("192.0.2.10",)


def test_headless_and_selectorless_services() -> None:
    svc = normalize(
        "Service",
        {
            "metadata": {"name": "h", "namespace": "x"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        },
    )
    assert svc.headless and svc.cluster_ips == () and svc.selector is None
    assert svc.affinity_timeout_seconds == 10800


def test_node() -> None:
    node = normalize(
        "Node",
        {
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {
                "podCIDR": "10.244.1.0/24",
                "podCIDRs": ["10.244.1.0/24"],
                "taints": [{"key": "node.weir.io/agent-not-ready", "effect": "NoSchedule"}],
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "172.18.0.2"},
                    {"type": "Hostname", "address": "node-1"},
                ],
                "conditions": [{"type": "Ready", "status": "False"}],
            },
        },
    )
    assert node.meta.namespace == "" and node.internal_ips == ("172.18.0.2",)
    assert node.pod_cidrs == ("10.244.1.0/24",) and not node.ready
    assert node.taints[0].key == "node.weir.io/agent-not-ready"


def test_endpoint_slice() -> None:
    es = normalize(
        "EndpointSlice",
        {
            "metadata": {
                "name": "web-abcde",
                "namespace": "x",
                "labels": {"kubernetes.io/service-name": "web"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {
                    "addresses": ["10.244.0.5"],
                    "conditions": {"ready": True, "serving": True},
                    "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "x", "name": "a"},
                },
                {
                    "addresses": ["10.244.0.6"],
                    "conditions": {"ready": False, "serving": True, "terminating": True},
                },
                {"addresses": ["10.244.0.7"]},
            ],
        },
    )
    assert es.service_name == "web" and es.ports[0].port == 8080
    first, draining, unknown = es.endpoints
    assert first.ready and first.pod_name == "a" and first.node_name == "node-1"
    assert not draining.ready and draining.serving and draining.terminating
    assert unknown.ready and unknown.serving  # nil conditions mean ready


def _policies(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("kind") == "NetworkPolicy" else []
        return found + [p for v in node.values() for p in _policies(v)]
    if isinstance(node, list):
        return [p for v in node for p in _policies(v)]
    return []


def test_every_conformance_policy_normalizes() -> None:
    # Cases name pod IPs as ${ip:ns/pod} and networks as ${net:ns/pod:len}; any address does
    # for normalization.
    texts = [
        re.sub(r"\$\{(ip|net):[^}]+\}", "10.244.0.9", f.read_text())
        for f in sorted(CONFORMANCE.glob("*.yaml"))
    ]
    policies = [p for text in texts for p in _policies(yaml.safe_load(text))]
    assert len(policies) >= 16
    for raw in policies:
        model = normalize("NetworkPolicy", raw)
        assert model.policy_types
        assert model.meta.namespace == raw["metadata"]["namespace"]


def test_network_policy_semantics_survive() -> None:
    np = normalize(
        "NetworkPolicy",
        {
            "metadata": {"name": "p", "namespace": "x", "generation": 2},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {"matchLabels": {"ns": "y"}},
                                "podSelector": {
                                    "matchExpressions": [
                                        {"key": "pod", "operator": "In", "values": ["b"]}
                                    ]
                                },
                            },
                            {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}},
                        ],
                        "ports": [
                            {"port": "serve-80-tcp"},
                            {"protocol": "UDP", "port": 81, "endPort": 90},
                        ],
                    },
                    {},
                ],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        },
    )
    assert np.policy_types == (PolicyType.INGRESS, PolicyType.EGRESS)  # defaulted
    first, allow_all = np.ingress
    peer = first.peers[0]
    assert peer.namespace_selector is not None and peer.pod_selector is not None
    assert peer.pod_selector.match_expressions[0].operator is Operator.IN
    assert first.peers[1].ip_block is not None
    assert first.peers[1].ip_block.except_ == ("10.0.1.0/24",)
    assert first.ports[0].port == "serve-80-tcp" and first.ports[0].protocol is Protocol.TCP
    assert first.ports[1].end_port == 90
    assert allow_all.peers == () and allow_all.ports == ()
    assert np.egress[0].peers[0].pod_selector is not None
    assert np.egress[0].peers[0].pod_selector.is_empty()


def test_policy_with_a_bad_selector_is_refused() -> None:
    with pytest.raises(NormalizeError):
        normalize(
            "NetworkPolicy",
            {
                "metadata": {"name": "p", "namespace": "x"},
                "spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            },
        )
