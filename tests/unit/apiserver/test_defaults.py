"""Defaulting: what a user reads back after creating an object on a stock cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from weir_local.apiserver._quantity import canonical, parse, round_up_milli
from weir_local.apiserver.defaults import apply_defaults, qos_class

Obj = dict[str, Any]


def defaulted(kind: str, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


def pod_spec(**spec: Any) -> Obj:
    base: Obj = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    base.update(spec)
    return base


def defaulted_pod(**spec: Any) -> Obj:
    return defaulted("Pod", {"metadata": {"name": "p", "namespace": "d"}, "spec": pod_spec(**spec)})


# --- Pod --------------------------------------------------------------------------------------


def test_pod_spec_defaults() -> None:
    spec = defaulted_pod()["spec"]
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["restartPolicy"] == "Always"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["enableServiceLinks"] is True


def test_container_defaults() -> None:
    spec = defaulted_pod(
        containers=[{"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
    )["spec"]
    ctr = spec["containers"][0]
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert ctr["resources"] == {}


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry.local:5000/team/app", "Always"),
        ("registry.local:5000/team/app:v2", "IfNotPresent"),
        ("nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "0" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "0" * 64, "Always"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    ctr = defaulted_pod(containers=[{"name": "a", "image": image}])["spec"]["containers"][0]
    assert ctr["imagePullPolicy"] == policy


def test_explicit_values_are_kept() -> None:
    spec = defaulted_pod(
        restartPolicy="Never",
        dnsPolicy="Default",
        terminationGracePeriodSeconds=0,
        enableServiceLinks=False,
        containers=[
            {
                "name": "a",
                "image": "nginx",
                "imagePullPolicy": "Never",
                "ports": [{"containerPort": 53, "protocol": "UDP"}],
            }
        ],
    )["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["dnsPolicy"] == "Default"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["enableServiceLinks"] is False
    assert spec["containers"][0]["imagePullPolicy"] == "Never"
    assert spec["containers"][0]["ports"][0]["protocol"] == "UDP"


def test_init_and_ephemeral_containers_are_defaulted_too() -> None:
    spec = defaulted_pod(
        initContainers=[{"name": "i", "image": "busybox"}],
        ephemeralContainers=[{"name": "e", "image": "busybox:1"}],
    )["spec"]
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"
    assert spec["ephemeralContainers"][0]["terminationMessagePolicy"] == "File"


def test_probe_and_handler_defaults() -> None:
    ctr = defaulted_pod(
        containers=[
            {
                "name": "a",
                "image": "x",
                "livenessProbe": {"httpGet": {"port": 8080}},
                "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 3},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
            }
        ]
    )["spec"]["containers"][0]
    assert ctr["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert ctr["readinessProbe"]["periodSeconds"] == 3
    assert ctr["readinessProbe"]["grpc"] == {"port": 9090, "service": ""}
    assert ctr["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/quit", "scheme": "HTTP"}


def test_env_field_ref_api_version() -> None:
    ctr = defaulted_pod(
        containers=[
            {
                "name": "a",
                "image": "x",
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }
        ]
    )["spec"]["containers"][0]
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.name",
        "apiVersion": "v1",
    }


def test_volume_defaults() -> None:
    volumes = defaulted_pod(
        volumes=[
            {"name": "scratch"},
            {"name": "s", "secret": {"secretName": "x"}},
            {"name": "c", "configMap": {"name": "x", "defaultMode": 0o400}},
            {"name": "h", "hostPath": {"path": "/var/log"}},
            {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {
                "name": "d",
                "downwardAPI": {
                    "items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]
                },
            },
            {"name": "e", "emptyDir": {"sizeLimit": "1024Mi"}},
        ]
    )["spec"]["volumes"]
    assert volumes[0] == {"name": "scratch", "emptyDir": {}}
    assert volumes[1]["secret"]["defaultMode"] == 420
    assert volumes[2]["configMap"]["defaultMode"] == 0o400
    assert volumes[3]["hostPath"]["type"] == ""
    assert volumes[4]["projected"]["defaultMode"] == 420
    assert volumes[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert volumes[5]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"
    assert volumes[6]["emptyDir"]["sizeLimit"] == "1Gi"


def test_requests_default_to_limits_and_quantities_are_canonical() -> None:
    ctr = defaulted_pod(
        containers=[
            {
                "name": "a",
                "image": "x",
                "resources": {
                    "limits": {"cpu": 0.5, "memory": "1024Mi"},
                    "requests": {"cpu": "100m"},
                },
            }
        ]
    )["spec"]["containers"][0]
    assert ctr["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "100m", "memory": "1Gi"},
    }


def test_host_network_makes_container_ports_host_ports() -> None:
    spec = defaulted_pod(
        hostNetwork=True,
        containers=[
            {
                "name": "a",
                "image": "x",
                "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 81}],
            }
        ],
    )["spec"]
    assert [p["hostPort"] for p in spec["containers"][0]["ports"]] == [80, 81]


def test_admission_defaults() -> None:
    spec = defaulted_pod()["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]


def test_admission_keeps_what_the_user_chose() -> None:
    own = {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 10,
    }
    spec = defaulted_pod(
        serviceAccount="builder", priorityClassName="system-node-critical", tolerations=[own]
    )["spec"]
    assert spec["serviceAccountName"] == "builder"
    assert spec["serviceAccount"] == "builder"
    assert spec["priority"] == 2000001000
    assert spec["tolerations"][0] == own
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    # A toleration of everything covers both taints.
    assert defaulted_pod(tolerations=[{"operator": "Exists"}])["spec"]["tolerations"] == [
        {"operator": "Exists"}
    ]
    # A custom priority class is left for the (absent) PriorityClass lookup.
    assert "priority" not in defaulted_pod(priorityClassName="batch")["spec"]


def test_pod_status_on_create() -> None:
    status = defaulted_pod()["status"]
    assert status == {"phase": "Pending", "qosClass": "BestEffort"}
    gated = defaulted_pod(schedulingGates=[{"name": "example.com/wait"}])["status"]
    assert gated["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
        }
    ]


def test_pod_status_is_not_overwritten() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": pod_spec(),
        "status": {"phase": "Running", "qosClass": "Burstable", "podIP": "10.0.0.5"},
    }
    status = defaulted("Pod", pod)["status"]
    assert status["phase"] == "Running"
    assert status["qosClass"] == "Burstable"
    assert status["podIPs"] == [{"ip": "10.0.0.5"}]


def test_pod_ip_fields_are_kept_in_step() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": pod_spec(),
        "status": {"podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}], "hostIP": "10.0.0.1"},
    }
    status = defaulted("Pod", pod)["status"]
    assert status["podIP"] == "10.0.0.5"
    assert status["hostIPs"] == [{"ip": "10.0.0.1"}]


def _res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Obj:
    out: Obj = {}
    if requests is not None:
        out["requests"] = requests
    if limits is not None:
        out["limits"] = limits
    return out


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([_res()], "BestEffort"),
        ([_res(requests={"ephemeral-storage": "1Gi"})], "BestEffort"),
        ([_res(requests={"cpu": "0"})], "BestEffort"),
        ([_res(requests={"cpu": "100m"})], "Burstable"),
        (
            [_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1", "memory": "1Gi"})],
            "Guaranteed",
        ),
        (
            [
                _res(
                    limits={"cpu": "1", "memory": "1Gi"},
                    requests={"cpu": "1000m", "memory": "1024Mi"},
                )
            ],
            "Guaranteed",
        ),
        ([_res(limits={"cpu": "1"}, requests={"cpu": "1"})], "Burstable"),
        (
            [_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m", "memory": "1Gi"})],
            "Burstable",
        ),
        (
            [
                _res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1", "memory": "1Gi"}),
                _res(),
            ],
            "Burstable",
        ),
    ],
)
def test_qos_class(resources: list[Obj], expected: str) -> None:
    spec = {
        "containers": [
            {"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)
        ]
    }
    assert qos_class(spec) == expected


def test_qos_class_counts_defaulted_requests() -> None:
    pod = defaulted_pod(
        containers=[
            {"name": "a", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
        ]
    )
    assert pod["status"]["qosClass"] == "Guaranteed"


def test_qos_class_with_pod_level_resources() -> None:
    spec = {
        "resources": {
            "limits": {"cpu": "2", "memory": "2Gi"},
            "requests": {"cpu": "2", "memory": "2Gi"},
        },
        "containers": [{"name": "a", "image": "x"}],
    }
    assert qos_class(spec) == "Guaranteed"


def test_pod_defaults_are_idempotent() -> None:
    once = defaulted_pod(
        hostNetwork=True,
        containers=[
            {
                "name": "a",
                "image": "x",
                "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "0.5"}},
            }
        ],
    )
    assert defaulted("Pod", once) == once


# --- Service ----------------------------------------------------------------------------------


def defaulted_service(**spec: Any) -> Obj:
    base: Obj = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    base.update(spec)
    return defaulted("Service", {"metadata": {"name": "s", "namespace": "d"}, "spec": base})


def test_service_defaults() -> None:
    svc = defaulted_service()
    assert svc["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }
    assert svc["status"] == {"loadBalancer": {}}


def test_service_target_port_and_protocol_kept() -> None:
    ports = defaulted_service(
        ports=[{"port": 53, "protocol": "UDP", "targetPort": "dns"}, {"port": 80, "targetPort": 0}]
    )["spec"]["ports"]
    assert ports == [
        {"port": 53, "protocol": "UDP", "targetPort": "dns"},
        {"port": 80, "protocol": "TCP", "targetPort": 80},
    ]


def test_client_ip_affinity_timeout() -> None:
    spec = defaulted_service(sessionAffinity="ClientIP")["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    kept = defaulted_service(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )["spec"]
    assert kept["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    dropped = defaulted_service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})["spec"]
    assert "sessionAffinityConfig" not in dropped


def test_external_traffic_policy_for_externally_accessible_services() -> None:
    assert defaulted_service(type="NodePort")["spec"]["externalTrafficPolicy"] == "Cluster"
    lb = defaulted_service(type="LoadBalancer")["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster"
    assert lb["allocateLoadBalancerNodePorts"] is True
    ext_ips = defaulted_service(externalIPs=["192.0.2.1"])["spec"]
    assert ext_ips["externalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in defaulted_service()["spec"]


def test_external_name_service_gets_no_cluster_fields() -> None:
    svc = defaulted(
        "Service",
        {
            "metadata": {"name": "db"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
    )
    spec = svc["spec"]
    for field in ("internalTrafficPolicy", "ipFamilyPolicy", "ipFamilies", "clusterIPs"):
        assert field not in spec


def test_cluster_ips_follow_cluster_ip() -> None:
    spec = defaulted_service(clusterIP="10.96.0.10")["spec"]
    assert spec["clusterIPs"] == ["10.96.0.10"]
    assert spec["ipFamilies"] == ["IPv4"]
    v6 = defaulted_service(clusterIP="fd00::10")["spec"]
    assert v6["ipFamilies"] == ["IPv6"]


def test_headless_service_families() -> None:
    with_selector = defaulted_service(clusterIP="None")["spec"]
    assert with_selector["ipFamilyPolicy"] == "SingleStack"
    assert with_selector["ipFamilies"] == ["IPv4"]
    selectorless = defaulted_service(clusterIP="None", selector=None)["spec"]
    assert selectorless["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["ipFamilies"] == ["IPv4", "IPv6"]


def test_load_balancer_ingress_ip_mode() -> None:
    svc = {
        "metadata": {"name": "s"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.x"}]}},
    }
    ingress = defaulted("Service", svc)["status"]["loadBalancer"]["ingress"]
    assert ingress == [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.x"}]


def test_service_defaults_are_idempotent() -> None:
    once = defaulted_service(
        type="LoadBalancer", clusterIP="None", selector=None, sessionAffinity="ClientIP"
    )
    assert defaulted("Service", once) == once


# --- NetworkPolicy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({}, ["Ingress"]),
        ({"ingress": [{}]}, ["Ingress"]),
        ({"egress": [{}]}, ["Ingress", "Egress"]),
        ({"egress": []}, ["Ingress"]),
        ({"policyTypes": ["Egress"]}, ["Egress"]),
    ],
)
def test_policy_types(spec: Obj, types: list[str]) -> None:
    np = defaulted("NetworkPolicy", {"metadata": {"name": "n"}, "spec": spec})
    assert np["spec"]["policyTypes"] == types
    assert np["spec"]["podSelector"] == {}


def test_network_policy_port_protocol() -> None:
    np = defaulted(
        "NetworkPolicy",
        {
            "metadata": {"name": "n"},
            "spec": {
                "podSelector": {"matchLabels": {"a": "b"}},
                "ingress": [{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}],
                "egress": [{"ports": [{"port": "dns"}]}],
            },
        },
    )
    assert np["spec"]["ingress"][0]["ports"] == [
        {"port": 80, "protocol": "TCP"},
        {"port": 53, "protocol": "UDP"},
    ]
    assert np["spec"]["egress"][0]["ports"] == [{"port": "dns", "protocol": "TCP"}]
    assert np["spec"]["podSelector"] == {"matchLabels": {"a": "b"}}


# --- EndpointSlice, Namespace, Node, Event ------------------------------------------------------


def test_endpoint_slice_port_defaults() -> None:
    eps = defaulted(
        "EndpointSlice",
        {
            "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        },
    )
    assert eps["ports"] == [
        {"port": 80, "name": "", "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]


def test_namespace_defaults() -> None:
    ns = defaulted("Namespace", {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_namespace_name_label_is_pinned() -> None:
    ns = defaulted(
        "Namespace",
        {"metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "b", "team": "x"}}},
    )
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "a", "team": "x"}


def test_namespace_finalizer_not_readded_during_deletion() -> None:
    ns = defaulted(
        "Namespace",
        {
            "metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": []},
            "status": {"phase": "Terminating"},
        },
    )
    assert ns["spec"]["finalizers"] == []
    assert ns["status"]["phase"] == "Terminating"


def test_node_defaults() -> None:
    node = defaulted(
        "Node",
        {
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"capacity": {"cpu": 4, "memory": "8192Mi"}},
        },
    )
    assert node["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    assert node["status"]["capacity"] == {"cpu": "4", "memory": "8Gi"}
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}


def test_node_pod_cidr_follows_pod_cidrs() -> None:
    node = defaulted("Node", {"spec": {"podCIDRs": ["10.244.1.0/24", "fd00::/64"]}})
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    # podCIDR wins when both are given and disagree, as in v1 conversion.
    both = defaulted("Node", {"spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.1.0.0/24"]}})
    assert both["spec"]["podCIDRs"] == ["10.0.0.0/24"]


def test_event_has_no_defaults() -> None:
    ev = {"metadata": {"name": "e"}, "reason": "x"}
    assert defaulted("Event", ev) == ev


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported kind"):
        apply_defaults("Deployment", {})


# --- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1000", "1k"),
        ("1.5", "1500m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("512", "512"),
        ("1Ki", "1Ki"),
        ("100Ki", "100Ki"),
        ("1e3", "1e3"),
        ("1E", "1E"),
        ("12M", "12M"),
        ("+2", "2"),
        (".5", "500m"),
        ("-1", "-1"),
        ("1n", "1n"),
        (2, "2"),
        (0.25, "250m"),
    ],
)
def test_quantity_canonical_form(text: str | int | float, expected: str) -> None:
    q = parse(text)
    assert q is not None
    assert canonical(q) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Gb", "1 Gi", ".", "-", True])
def test_quantity_parse_errors(text: Any) -> None:
    assert parse(text) is None


def test_quantity_round_up_to_milli() -> None:
    q = parse("0.0001")
    assert q is not None
    assert canonical(round_up_milli(q)) == "1m"
