"""The deployment artefacts: the Helm chart, the Dockerfile, compose.yaml and the Tiltfile.

The chart is linted and rendered by the real helm binary and every manifest is checked against
the Kubernetes API types field by field. Each rendered config.yaml is loaded by the service's own
config class, and the chart's values schema must name exactly the settings that class has, so
the chart and the code cannot drift apart. No image is built here (no container engine): the
Dockerfile, compose.yaml and the Tiltfile are checked against the workspace they build from.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client import models as k8s_models
from weir import cni_config, endpoint_api
from weir import config as weir_config
from weir_identity_allocator.config import AllocatorConfig
from weir_k8s_watcher.informer import KINDS
from weir_k8s_watcher.service import WatcherConfig
from weir_local.cluster import plan
from weir_node_loader.config import NodeLoaderConfig
from weir_policy_compiler.config import CompilerConfig

from tests.support.processes import HELM, ROOT, require

pytestmark = pytest.mark.integration

CHART = ROOT / "deploy" / "helm" / "weir"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
INSTALL_CNI = ROOT / "deploy" / "docker" / "install-cni.sh"
COMPOSE = ROOT / "compose.yaml"
TILTFILE = ROOT / "Tiltfile"
NAMESPACE = "weir-system"

# The six services, named once by the local cluster's plan; everything below must agree.
SERVICES = (*plan.SERVICES, *plan.NODE_SERVICES)
CLUSTER_SERVICES = tuple(plan.SERVICES)
VALUES_KEY = {
    "k8s-watcher": "k8sWatcher",
    "identity-allocator": "identityAllocator",
    "policy-compiler": "policyCompiler",
    "lb-programmer": "lbProgrammer",
    "bandwidth-manager": "bandwidthManager",
    "node-loader": "nodeLoader",
}
AGENT_NOT_READY = "node.weir.io/agent-not-ready"

Manifest = dict[str, Any]


# --- helm ----------------------------------------------------------------------------------------


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    require(HELM.exists(), f"helm is not installed at {HELM} (run `make setup`)")
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(*sets: str, values: dict[str, Any] | None = None) -> list[Manifest]:
    """`helm template` as release weir in weir-system; --set for each of `sets`."""
    args = ["template", "weir", str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    if values is not None:
        args += ["--values", "-"]
    require(HELM.exists(), f"helm is not installed at {HELM} (run `make setup`)")
    done = subprocess.run(
        [str(HELM), *args],
        input=yaml.safe_dump(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def default_manifests() -> list[Manifest]:
    return render()


def by_kind_name(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    out = {}
    for m in manifests:
        key = (m["kind"], m["metadata"]["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = m
    return out


def kinds_and_names(manifests: list[Manifest]) -> set[tuple[str, str]]:
    return set(by_kind_name(manifests))


def expected_objects(
    services: tuple[str, ...] = SERVICES, *, nats: bool = True
) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for name in services:
        obj = f"weir-{name}"
        out |= {
            ("ServiceAccount", obj),
            ("ConfigMap", obj),
            ("Service", f"{obj}-metrics"),
            ("DaemonSet" if name == "node-loader" else "Deployment", obj),
        }
        if name in ("k8s-watcher", "node-loader", "policy-compiler"):
            out |= {("ClusterRole", obj), ("ClusterRoleBinding", obj)}
    if nats:
        out |= {
            ("ServiceAccount", "weir-nats"),
            ("Service", "weir-nats"),
            ("StatefulSet", "weir-nats"),
        }
    return out


def workloads(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Weir's Deployments and DaemonSet by service name (component label)."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in manifests
        if m["kind"] in ("Deployment", "DaemonSet")
    }


def config_yaml(manifests: list[Manifest], service: str) -> dict[str, Any]:
    cm = by_kind_name(manifests)[("ConfigMap", f"weir-{service}")]
    data = yaml.safe_load(cm["data"]["config.yaml"])
    assert isinstance(data, dict)
    return data


def container(workload: Manifest, name: str | None = None) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: Manifest = containers[0]
    assert name is None or c["name"] == name
    return c


def env_of(c: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# --- the Kubernetes API types, field by field -----------------------------------------------------

TOP_LEVEL_TYPES = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}


def api_type_problems(value: Any, type_name: str, path: str) -> list[str]:
    """Fields the API type does not have, or values of the wrong shape (a misspelt key in a
    template would otherwise be dropped silently by the API server)."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p
            for i, v in enumerate(value)
            for p in api_type_problems(v, type_name[5:-1], f"{path}[{i}]")
        ]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return [p for k, v in value.items() for p in api_type_problems(v, inner, f"{path}.{k}")]
    if type_name == "object":
        return []
    if type_name == "bool":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if type_name == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if type_name in ("str", "datetime"):
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a string, got {value!r}"]
    model = getattr(k8s_models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    problems = []
    for key, v in value.items():
        attr = json_to_attr.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not a field of {type_name}")
        else:
            problems += api_type_problems(v, model.openapi_types[attr], f"{path}.{key}")
    return problems


# --- values.schema.json ---------------------------------------------------------------------------


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def schema_properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, list[Any]]:
    """Every property a schema node declares, through its $ref chain (they all apply)."""
    out: dict[str, list[Any]] = defaultdict(list)
    for key, sub in node.get("properties", {}).items():
        out[key].append(sub)
    ref = node.get("$ref")
    if ref:
        assert ref.startswith("#/$defs/"), ref
        for key, subs in schema_properties(schema, schema["$defs"][ref[8:]]).items():
            out[key].extend(subs)
    return out


def schema_closed(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    if node.get("additionalProperties") is False or node.get("unevaluatedProperties") is False:
        return True
    ref = node.get("$ref")
    if not ref:
        return False
    return schema_closed(schema, schema["$defs"][ref[8:]])


def schema_config_nodes(schema: dict[str, Any], values_key: str) -> list[dict[str, Any]]:
    top = schema["properties"][values_key]
    return schema_properties(schema, top)["config"]


# --- the services' own config classes -------------------------------------------------------------


def config_class(service: str) -> type[weir_config.ServiceConfig]:
    """The settings class a service runs with: the ServiceConfig subclass its service module
    defines or imports (e.g. weir_k8s_watcher.service.WatcherConfig), or ServiceConfig."""
    module = importlib.import_module(f"weir_{service.replace('-', '_')}.service")
    own = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, weir_config.ServiceConfig) and cls is not weir_config.ServiceConfig
    ]
    assert len(own) <= 1, f"{module.__name__} defines several config classes: {own}"
    return own[0] if own else weir_config.ServiceConfig


# Settings the chart sets per pod rather than through values.
SET_PER_POD = {"node-loader": {"node_name"}}


# --- tests: helm lint and the rendered objects ----------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        [],
        ["nats.enabled=false", "nats.url=nats://nats.example:4222"],
        ["nodeLoader.enabled=false", "policyCompiler.replicas=3"],
        ["cni.install=false"],
    ],
    ids=["defaults", "external-nats", "no-node-loader", "no-cni"],
)
def test_helm_lint_strict(sets: list[str]) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    done = helm(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_install_notes_render(tmp_path: Path) -> None:
    # A client-side dry run renders NOTES.txt too, with no cluster behind it.
    args = ["install", "weir", str(CHART), "-n", NAMESPACE, "--dry-run=client"]
    require(HELM.exists(), f"helm is not installed at {HELM} (run `make setup`)")
    done = subprocess.run(
        [
            str(HELM),
            *args,
            "--set",
            "policyCompiler.replicas=3",
            "--set",
            "lbProgrammer.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout[done.stdout.index("NOTES:") :]
    assert f"nats://weir-nats.{NAMESPACE}.svc:4222" in notes
    assert re.search(r"policy-compiler\s+Deployment, 3 replica", notes)
    assert re.search(r"lb-programmer\s+disabled", notes)


def test_default_render_is_exactly_the_expected_objects(
    default_manifests: list[Manifest],
) -> None:
    assert kinds_and_names(default_manifests) == expected_objects()
    for m in default_manifests:
        if m["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert m["metadata"]["namespace"] == NAMESPACE, m["metadata"]["name"]


def test_every_manifest_matches_the_kubernetes_api_types(default_manifests: list[Manifest]) -> None:
    manifests = default_manifests + render("global.hostNetwork=true", values=distinct_ports())
    problems = []
    for m in manifests:
        type_name = TOP_LEVEL_TYPES[(m["apiVersion"], m["kind"])]
        problems += api_type_problems(m, type_name, f"{m['kind']}/{m['metadata']['name']}")
    assert problems == []


def test_external_nats_renders_no_nats_and_points_every_service_at_it() -> None:
    url = "nats://nats.example:4222"
    manifests = render("nats.enabled=false", f"nats.url={url}")
    assert kinds_and_names(manifests) == expected_objects(nats=False)
    for service in SERVICES:
        assert config_yaml(manifests, service)["nats_url"] == url


def test_node_loader_disabled_renders_no_node_objects() -> None:
    manifests = render("nodeLoader.enabled=false")
    assert kinds_and_names(manifests) == expected_objects(CLUSTER_SERVICES)
    assert not [m for m in manifests if m["kind"] == "DaemonSet"]


def test_replicas_per_service() -> None:
    deployments = workloads(render("policyCompiler.replicas=3"))
    replicas = {
        name: d["spec"]["replicas"] for name, d in deployments.items() if name in CLUSTER_SERVICES
    }
    assert replicas == {name: 3 if name == "policy-compiler" else 1 for name in CLUSTER_SERVICES}


def test_each_service_can_be_disabled() -> None:
    for service in SERVICES:
        manifests = render(f"{VALUES_KEY[service]}.enabled=false")
        rest = tuple(s for s in SERVICES if s != service)
        assert kinds_and_names(manifests) == expected_objects(rest), service


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["policyCompiler.replicas=-1"], "/policyCompiler/replicas"),
        (["policyCompiler.replicas=three"], "/policyCompiler/replicas"),
        (["k8sWatcher.replicas=2"], "/k8sWatcher/replicas"),
        (["policyCompiler.config.nats_ur=nats://x:4222"], "/policyCompiler/config/nats_ur"),
        (["identityAllocator.config.kinds={Pod}"], "/identityAllocator/config/kinds"),
        (["k8sWatcher.config.kinds={Pod,Gateway}"], "/k8sWatcher/config/kinds"),
        (["global.config.log_level=loud"], "/global/config/log_level"),
        (["global.config.health_port=0"], "/global/config/health_port"),
        (["nats.enabled=false"], "/nats/url"),
        (["nodeLoader.replicas=2"], "/nodeLoader/replicas"),
        # node-loader writes the conflist: the chart has no conflist settings of its own.
        (["cni.confName=05-weir.conflist"], "'confName' not allowed"),
        (["cni.confDir=/etc/cni/net.d"], "'confDir' not allowed"),
        (["cni.binDir=opt/cni/bin"], "/cni/binDir"),
        (["nodeLoader.config.node_name=node-a"], "/nodeLoader/config/node_name"),
        (["nodeLoader.config.mtu=100"], "/nodeLoader/config/mtu"),
        (["nodeLoader.config.resync_seconds=0"], "/nodeLoader/config/resync_seconds"),
        (["nodeLoader.config.bpf_root=/var/lib/weir/bpf"], "/nodeLoader/config/bpf_root"),
        (["nodeLoader.config.socket_path=/weir.sock"], "/nodeLoader/config/socket_path"),
        (["nodeLoader.config.cni_conf_dir=/etc/cni/net.d/"], "/nodeLoader/config/cni_conf_dir"),
        (["nodeLoader.config.ipam_dir=/var/lib/../ipam"], "/nodeLoader/config/ipam_dir"),
        (["imageRegistry=example.com"], "imageRegistry"),
    ],
)
def test_values_schema_rejects_bad_values(sets: list[str], complaint: str) -> None:
    args = ["template", "weir", str(CHART)]
    for s in sets:
        args += ["--set", s]
    done = helm(*args)
    assert done.returncode != 0, f"{sets} rendered"
    assert "schema" in done.stderr and complaint in done.stderr, done.stderr


def test_k8s_watcher_is_one_replica_recreated(default_manifests: list[Manifest]) -> None:
    watcher = workloads(default_manifests)["k8s-watcher"]
    assert watcher["spec"]["replicas"] == 1
    assert watcher["spec"]["strategy"] == {"type": "Recreate"}
    for name, d in workloads(default_manifests).items():
        if d["kind"] == "Deployment" and name != "k8s-watcher":
            assert d["spec"].get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"


def test_images_are_per_service_and_default_to_the_app_version(
    default_manifests: list[Manifest],
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    registry = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["registry"]
    for name, w in workloads(default_manifests).items():
        assert container(w)["image"] == f"{registry}/weir-{name}:{chart['appVersion']}"
    tagged = workloads(
        render("image.registry=r.example/weir", "image.tag=1.2", "lbProgrammer.image.tag=v9")
    )
    assert container(tagged["k8s-watcher"])["image"] == "r.example/weir/weir-k8s-watcher:1.2"
    assert container(tagged["lb-programmer"])["image"] == "r.example/weir/weir-lb-programmer:v9"


def test_every_container_finds_nats_and_is_probed_on_its_health_port(
    default_manifests: list[Manifest],
) -> None:
    objects = by_kind_name(default_manifests)
    found = workloads(default_manifests)
    assert set(found) == set(SERVICES)
    for name, w in found.items():
        pod = w["spec"]["template"]["spec"]
        c = container(w, name)
        settings = config_yaml(default_manifests, name)
        assert settings["nats_url"] == f"nats://weir-nats.{NAMESPACE}.svc:4222"
        assert settings["health_host"] == "0.0.0.0"
        # The settings file is what carries nats_url: the ConfigMap, mounted where WEIR_CONFIG
        # points.
        assert env_of(c)["WEIR_CONFIG"] == "/etc/weir"
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/weir")
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == f"weir-{name}"
        # Service links would inject WEIR_-prefixed variables next to the settings.
        assert pod["enableServiceLinks"] is False

        port = settings["health_port"]
        assert c["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert c["resources"]["requests"] and c["resources"]["limits"]

        svc = objects[("Service", f"weir-{name}-metrics")]
        assert svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]
        assert svc["spec"]["ports"] == [
            {"name": "metrics", "port": port, "targetPort": "health", "protocol": "TCP"}
        ]
        assert svc["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }


def test_health_port_moves_probes_service_and_annotations_together() -> None:
    manifests = render("policyCompiler.config.health_port=9999")
    w = workloads(manifests)["policy-compiler"]
    assert container(w)["ports"][0]["containerPort"] == 9999
    svc = by_kind_name(manifests)[("Service", "weir-policy-compiler-metrics")]
    assert svc["spec"]["ports"][0]["port"] == 9999
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == "9999"
    assert config_yaml(manifests, "lb-programmer")["health_port"] == 9876


def test_cluster_services_run_unprivileged(default_manifests: list[Manifest]) -> None:
    for name in CLUSTER_SERVICES:
        w = workloads(default_manifests)[name]
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == dockerfile_user()
        assert "hostNetwork" not in pod
        sc = container(w)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_node_loader_daemonset(default_manifests: list[Manifest]) -> None:
    ds = by_kind_name(default_manifests)[("DaemonSet", "weir-node-loader")]
    pod = ds["spec"]["template"]["spec"]
    c = container(ds, "node-loader")
    assert c["securityContext"] == {"privileged": True}
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"  # finds weir-nats from the host network
    assert "hostPID" not in pod
    assert env_of(c)["WEIR_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}

    def host_path(mount_path: str) -> str:
        return str(volumes[mounts[mount_path]["name"]]["hostPath"]["path"])

    assert set(mounts) == {
        "/etc/weir",
        "/sys/fs/bpf",
        "/sys/fs/cgroup",
        "/lib/modules",
        "/usr/src",
        "/run/netns",
        "/var/run/weir",
        "/etc/cni/net.d",
        "/var/lib/weir",
    }
    assert host_path("/sys/fs/bpf") == "/sys/fs/bpf"
    assert mounts["/sys/fs/bpf"]["mountPropagation"] == "Bidirectional"
    for path in ("/sys/fs/cgroup", "/run/netns", "/var/run/weir", "/etc/cni/net.d"):
        assert host_path(path) == path
        assert not mounts[path].get("readOnly")
    for path in ("/lib/modules", "/usr/src", "/var/lib/weir"):
        assert host_path(path) == path
        assert mounts[path]["readOnly"] is True
    assert mounts["/run/netns"]["mountPropagation"] == "HostToContainer"

    # What the conflist names must mean the same on the host: the socket's directory, the CNI
    # config directory node-loader writes and the IPAM directory's parent are the host's, at the
    # same paths, created on the host when missing.
    settings = config_yaml(default_manifests, "node-loader")
    for path in (
        os.path.dirname(settings["socket_path"]),
        settings["cni_conf_dir"],
        os.path.dirname(settings["ipam_dir"]),
    ):
        assert volumes[mounts[path]["name"]]["hostPath"] == {
            "path": path,
            "type": "DirectoryOrCreate",
        }
    assert Path(settings["bpf_root"]).is_relative_to("/sys/fs/bpf")
    # Its own namespace is the node's (hostNetwork); the API through its service account.
    assert not settings.get("netns") and not settings.get("kubeconfig")

    tolerations = pod["tolerations"]
    assert {"operator": "Exists"} in tolerations  # every taint
    assert {"key": AGENT_NOT_READY, "operator": "Exists"} in tolerations
    # Users may narrow the list; the taint the loader itself removes stays tolerated.
    narrowed = by_kind_name(render("nodeLoader.tolerations=null"))[
        ("DaemonSet", "weir-node-loader")
    ]
    assert narrowed["spec"]["template"]["spec"]["tolerations"] == [
        {"key": AGENT_NOT_READY, "operator": "Exists"}
    ]


def test_node_loader_installs_the_cni_plugin_and_writes_the_conflist(
    default_manifests: list[Manifest],
) -> None:
    objects = by_kind_name(default_manifests)
    ds = objects[("DaemonSet", "weir-node-loader")]
    pod = ds["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == container(ds)["image"]
    # The plugin only: node-loader writes the conflist once it knows the node's podCIDR.
    assert init["command"] == ["/opt/weir/cni/install-cni.sh", "/host/opt/cni/bin"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in init["volumeMounts"]}
    assert mounts == {
        "/host/opt/cni/bin": {
            "name": "cni-bin",
            "hostPath": {"path": "/opt/cni/bin", "type": "DirectoryOrCreate"},
        }
    }
    assert not [m for m in default_manifests if "conflist" in json.dumps(m.get("data", {}))]
    assert config_yaml(default_manifests, "node-loader")["cni_conf_dir"] == "/etc/cni/net.d"

    moved = by_kind_name(render("cni.binDir=/home/kubernetes/bin"))
    moved_pod = moved[("DaemonSet", "weir-node-loader")]["spec"]["template"]["spec"]
    assert moved_pod["initContainers"][0]["command"][1] == "/host/home/kubernetes/bin"
    assert {
        "name": "cni-bin",
        "hostPath": {"path": "/home/kubernetes/bin", "type": "DirectoryOrCreate"},
    } in moved_pod["volumes"]


def test_cni_install_off_leaves_the_nodes_cni_alone() -> None:
    manifests = render("cni.install=false")
    assert kinds_and_names(manifests) == expected_objects()
    ds = by_kind_name(manifests)[("DaemonSet", "weir-node-loader")]
    pod = ds["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    # node-loader still writes its conflist, into a directory of its own that no runtime reads.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container(ds)["volumeMounts"]}
    assert volumes[mounts["/etc/cni/net.d"]["name"]] == {"name": "cni-conf", "emptyDir": {}}
    assert "cni-bin" not in volumes
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert not host_paths & {"/etc/cni/net.d", "/opt/cni/bin"}


def test_node_loader_host_directories_follow_its_settings() -> None:
    values = {
        "nodeLoader": {
            "config": {
                "socket_path": "/run/weir-cni/loader.sock",
                "cni_conf_dir": "/var/lib/rancher/k3s/agent/etc/cni/net.d",
                "ipam_dir": "/run/weir-cni/ipam",
            }
        }
    }
    ds = by_kind_name(render(values=values))[("DaemonSet", "weir-node-loader")]
    pod = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container(ds)["volumeMounts"]}
    # The socket and the IPAM data share one directory: one volume, writable.
    assert not mounts["/run/weir-cni"].get("readOnly")
    assert volumes[mounts["/run/weir-cni"]["name"]]["hostPath"]["path"] == "/run/weir-cni"
    k3s = "/var/lib/rancher/k3s/agent/etc/cni/net.d"
    assert volumes[mounts[k3s]["name"]]["hostPath"]["path"] == k3s
    assert not {"/var/run/weir", "/var/lib/weir", "/etc/cni/net.d"} & set(mounts)
    assert api_type_problems(ds, "V1DaemonSet", "DaemonSet") == []

    for sets, complaint in (
        (["nodeLoader.config.socket_path=/etc/weir/loader.sock"], "socket_path"),
        (["nodeLoader.config.cni_conf_dir=/run/netns"], "cni_conf_dir"),
        (["cni.install=false", "nodeLoader.config.cni_conf_dir=/var/run/weir"], "cni_conf_dir"),
    ):
        args = ["template", "weir", str(CHART)]
        for one in sets:
            args += ["--set", one]
        done = helm(*args)
        assert done.returncode != 0 and complaint in done.stderr, (sets, done.stderr)


def test_node_loader_values_are_its_own_defaults() -> None:
    """The settings values.yaml spells out for node-loader are weir-node-loader's defaults, so
    the chart and a node-loader started by hand agree on every path."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text())["nodeLoader"]["config"]
    defaults = {f.name: f.default for f in dataclasses.fields(NodeLoaderConfig)}
    assert {"socket_path", "cni_conf_dir", "ipam_dir", "bpf_root"} <= set(chart)
    assert chart == {k: defaults[k] for k in chart}
    assert chart["socket_path"] == endpoint_api.DEFAULT_SOCKET
    assert cni_config.CONFLIST_NAME == "05-weir.conflist"  # named in values.yaml and NOTES.txt


def test_rbac_is_exactly_the_least_privilege(default_manifests: list[Manifest]) -> None:
    def rules(role: Manifest) -> set[tuple[str, str, str]]:
        return {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    def grant(groups: str, resources: str, verbs: str) -> set[tuple[str, str, str]]:
        return {
            (g, r, v)
            for g in groups.split(",")
            for r in resources.split(",")
            for v in verbs.split(",")
        }

    expected = {
        "weir-k8s-watcher": grant("", "namespaces,pods,services,nodes", "get,list,watch")
        | grant("discovery.k8s.io", "endpointslices", "get,list,watch")
        | grant("networking.k8s.io", "networkpolicies", "get,list,watch"),
        # Its own Node: read it, patch the agent-not-ready taint away. The rest comes from NATS.
        "weir-node-loader": grant("", "nodes", "get,patch"),
        "weir-policy-compiler": grant("", "events", "create,patch")
        | grant("events.k8s.io", "events", "create,patch"),
    }
    roles = {m["metadata"]["name"]: m for m in default_manifests if m["kind"] == "ClusterRole"}
    assert {name: rules(role) for name, role in roles.items()} == expected
    for m in default_manifests:
        assert m["kind"] not in ("Role", "RoleBinding")
        assert not any("*" in str(r) for r in m.get("rules", []))

    bindings = [m for m in default_manifests if m["kind"] == "ClusterRoleBinding"]
    assert {b["metadata"]["name"]: (b["roleRef"]["name"], b["subjects"]) for b in bindings} == {
        name: (name, [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}])
        for name in expected
    }
    # Only the services with rights get a token mounted at all.
    for name, w in workloads(default_manifests).items():
        pod = w["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"weir-{name}"
        assert pod["automountServiceAccountToken"] is (f"weir-{name}" in expected), name


def test_config_maps_load_with_each_services_config_class(
    default_manifests: list[Manifest], tmp_path: Path
) -> None:
    values = {
        "global": {"config": {"log_level": "debug", "kv_replicas": 3}},
        "k8sWatcher": {
            "config": {
                "kinds": ["Pod", "Namespace"],
                "list_page_size": 2_000_000,
                "watch_timeout_seconds": 30.5,
                "max_in_flight_writes": 64,
                "kubeconfig": "",
            }
        },
        "nodeLoader": {"config": {"log_format": "text", "mtu": 9000, "resync_seconds": 2.5}},
    }
    for manifests, overridden in ((default_manifests, False), (render(values=values), True)):
        for service in SERVICES:
            cls = config_class(service)
            directory = tmp_path / f"{service}-{overridden}"
            directory.mkdir()
            cm = by_kind_name(manifests)[("ConfigMap", f"weir-{service}")]
            (directory / "config.yaml").write_text(cm["data"]["config.yaml"])
            environ = {"WEIR_CONFIG": str(directory)}  # the ConfigMap, mounted as a directory
            if service == "node-loader":
                environ["WEIR_NODE_NAME"] = "node-a"  # from spec.nodeName
            loaded = weir_config.load(cls, prog=f"weir-{service}", argv=[], environ=environ)
            cfg = loaded.config
            assert cfg.nats_url == f"nats://weir-nats.{NAMESPACE}.svc:4222"
            assert cfg.health_host == "0.0.0.0"
            assert cfg.health_port == 9876
            from_file = {k for k, src in loaded.sources.items() if src.startswith("file ")}
            assert from_file == set(yaml.safe_load(cm["data"]["config.yaml"]))
            if overridden:
                assert (cfg.log_level, cfg.kv_replicas) == ("debug", 3)
            if service == "node-loader":
                assert isinstance(cfg, NodeLoaderConfig)
                cfg.check()
                assert cfg.node_name == "node-a"
                assert cfg.socket_path == "/var/run/weir/node-loader.sock"
                assert cfg.cni_conf_dir == "/etc/cni/net.d"
                assert cfg.ipam_dir == "/var/lib/weir/ipam"
                assert cfg.pin_dir == Path("/sys/fs/bpf/weir/node-a")
                assert (cfg.netns, cfg.kubeconfig) == ("", "")
                assert (cfg.mtu, cfg.resync_seconds) == ((9000, 2.5) if overridden else (1500, 60))
        if overridden:
            watcher = weir_config.load(
                WatcherConfig,
                prog="weir-k8s-watcher",
                argv=[],
                environ={"WEIR_CONFIG": str(tmp_path / "k8s-watcher-True")},
            ).config
            assert watcher.kinds == ("Pod", "Namespace")
            assert watcher.list_page_size == 2_000_000
            assert watcher.watch_timeout_seconds == 30.5


def test_config_classes_are_found() -> None:
    assert config_class("k8s-watcher") is WatcherConfig
    assert config_class("node-loader") is NodeLoaderConfig
    assert config_class("identity-allocator") is AllocatorConfig
    assert config_class("policy-compiler") is CompilerConfig
    assert config_class("lb-programmer") is weir_config.ServiceConfig


def test_values_schema_names_exactly_each_services_settings() -> None:
    schema = load_schema()
    common = {f.name for f in dataclasses.fields(weir_config.ServiceConfig)}
    (global_config,) = schema_properties(schema, schema["properties"]["global"])["config"]
    assert set(schema_properties(schema, global_config)) == common
    assert schema_closed(schema, global_config)
    for service in SERVICES:
        fields = {f.name for f in dataclasses.fields(config_class(service))}
        nodes = schema_config_nodes(schema, VALUES_KEY[service])
        keys = {k for node in nodes for k in schema_properties(schema, node)}
        assert keys == fields - SET_PER_POD.get(service, set()), (
            f"{VALUES_KEY[service]}.config in values.schema.json must list exactly the settings of "
            f"{config_class(service).__qualname__}"
        )
        assert any(schema_closed(schema, node) for node in nodes), service
    watcher_kinds = schema["$defs"]["watcherConfig"]["properties"]["kinds"]["items"]["enum"]
    assert set(watcher_kinds) == {k.kind for k in KINDS}


def test_host_network_needs_distinct_health_ports() -> None:
    args = ["template", "weir", str(CHART), "--set", "global.hostNetwork=true"]
    done = helm(*args)
    assert done.returncode != 0 and "health_port" in done.stderr
    manifests = render("global.hostNetwork=true", values=distinct_ports())
    for m in manifests:
        if m["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            pod = m["spec"]["template"]["spec"]
            assert pod["hostNetwork"] is True, m["metadata"]["name"]
            assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
            assert {"key": AGENT_NOT_READY, "operator": "Exists"} in pod["tolerations"]


def distinct_ports() -> dict[str, Any]:
    return {
        VALUES_KEY[s]: {"config": {"health_port": 9871 + i}} for i, s in enumerate(CLUSTER_SERVICES)
    }


def test_nats_statefulset_runs_jetstream_on_a_volume(default_manifests: list[Manifest]) -> None:
    sts = by_kind_name(default_manifests)[("StatefulSet", "weir-nats")]
    c = container(sts, "nats")
    assert "-js" in c["args"]
    assert c["args"][c["args"].index("-sd") + 1] == "/data"
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    ephemeral = by_kind_name(render("nats.persistence.enabled=false"))[("StatefulSet", "weir-nats")]
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert ephemeral["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


# --- compose.yaml ---------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_and_chart_name_the_same_six_services(default_manifests: list[Manifest]) -> None:
    services = compose()["services"]
    weir = {name for name, s in services.items() if s.get("build")} - {"apiserver"}
    assert weir == set(SERVICES)
    assert set(workloads(default_manifests)) == set(SERVICES)
    assert set(services) == {*SERVICES, "nats", "apiserver"}


def test_compose_wires_every_service() -> None:
    services = compose()["services"]
    nats = services["nats"]
    assert nats["image"].startswith("docker.io/library/nats:")
    assert "-js" in nats["command"]
    published: dict[str, int] = {}
    for name in (*SERVICES, "apiserver"):
        s = services[name]
        build = s["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        assert build["args"]["SERVICE"] == ("local" if name == "apiserver" else name)
        assert "healthcheck" in s
        if name == "apiserver":
            continue
        env = s["environment"]
        assert env["WEIR_NATS_URL"] == "nats://nats:4222"
        assert env["WEIR_HEALTH_HOST"] == "0.0.0.0"
        port = int(env["WEIR_HEALTH_PORT"])
        assert f":{port}/readyz" in " ".join(s["healthcheck"]["test"])
        assert s["depends_on"]["nats"]["condition"] == "service_healthy"
        (mapping,) = s["ports"]
        host_ip, host_port, container_port = mapping.split(":")
        assert (host_ip, int(container_port)) == ("127.0.0.1", port)
        published[name] = int(host_port)
    assert services["k8s-watcher"]["environment"]["WEIR_KUBECONFIG"] == "/etc/weir/kubeconfig"
    assert services["k8s-watcher"]["depends_on"]["apiserver"]["condition"] == "service_healthy"
    assert len(set(published.values())) == len(published)
    # Tilt forwards the same local ports.
    assert tilt_services() == published


def test_compose_node_loader_is_privileged_with_the_node_mounts() -> None:
    spec = compose()
    loader = spec["services"]["node-loader"]
    assert loader["privileged"] is True
    assert "network_mode" not in loader  # its own namespace: the machine's stays untouched
    env = loader["environment"]
    assert env["WEIR_NODE_NAME"]
    assert not env.get("WEIR_NETNS")
    # The taint is lifted through the API server, as k8s-watcher reads it.
    assert (
        env["WEIR_KUBECONFIG"] == spec["services"]["k8s-watcher"]["environment"]["WEIR_KUBECONFIG"]
    )
    assert loader["configs"] == spec["services"]["k8s-watcher"]["configs"]
    assert loader["depends_on"]["apiserver"]["condition"] == "service_healthy"
    mounts: dict[str, dict[str, Any]] = {}
    for v in loader["volumes"]:
        if isinstance(v, str):
            source, target, *mode = v.split(":")
            mounts[target] = {"source": source, "read_only": mode == ["ro"]}
        else:
            mounts[v["target"]] = {
                "source": v["source"],
                "read_only": v.get("read_only", False),
                "propagation": v.get("bind", {}).get("propagation"),
            }
    assert set(mounts) == {
        "/sys/fs/bpf",
        "/sys/fs/cgroup",
        "/lib/modules",
        "/usr/src",
        "/run/netns",
        "/var/run/weir",
        "/var/lib/weir",
        "/etc/cni/net.d",
    }
    host = {t: m for t, m in mounts.items() if m["source"].startswith("/")}
    assert all(m["source"] == target for target, m in host.items())
    assert mounts["/sys/fs/bpf"]["propagation"] == "rshared"
    assert mounts["/lib/modules"]["read_only"] and mounts["/usr/src"]["read_only"]
    assert mounts["/var/lib/weir"]["read_only"]
    assert not mounts["/sys/fs/bpf"]["read_only"] and not mounts["/var/run/weir"]["read_only"]
    # The conflist goes to a volume: the machine's own CNI config is never rewritten.
    assert mounts["/etc/cni/net.d"]["source"] in spec["volumes"]
    assert not mounts["/etc/cni/net.d"]["read_only"]
    # The settings name the mounted paths (they are node-loader's defaults).
    defaults = {f.name: f.default for f in dataclasses.fields(NodeLoaderConfig)}
    for setting, mount in (
        ("socket_path", "/var/run/weir"),
        ("cni_conf_dir", "/etc/cni/net.d"),
        ("ipam_dir", "/var/lib/weir"),
    ):
        value = env[f"WEIR_{setting.upper()}"]
        assert value == defaults[setting]
        assert value == mount or os.path.dirname(value) == mount


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI: compose.yaml is checked structurally only")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin: compose.yaml is checked structurally")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


# --- the Dockerfile -------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not pending):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    assert not pending
    return out


def dockerfile_stages() -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (what it is FROM, its instructions)."""
    stages: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in dockerfile_lines():
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", line, re.IGNORECASE)
        if m:
            current = []
            stages[m.group(2) or "<final>"] = (m.group(1), current)
        elif current is not None:
            current.append(line)
    return stages


def workspace_members() -> dict[str, Path]:
    """Package name -> directory, for every member of the uv workspace."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    out = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for d in sorted(ROOT.glob(pattern)):
            if (d / "pyproject.toml").exists():
                project = tomllib.loads((d / "pyproject.toml").read_text())["project"]
                out[project["name"]] = d
    return out


def console_scripts(package_dir: Path) -> set[str]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    return set(project.get("scripts", {}))


def dockerfile_user() -> int:
    _, lines = dockerfile_stages()["unprivileged"]
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid == gid
    return int(uid)


def test_dockerfile_builds_each_service_from_the_workspace() -> None:
    lines = dockerfile_lines()
    stages = dockerfile_stages()
    assert lines[0] == "ARG SERVICE", "SERVICE must be declared before the first FROM"
    assert stages["<final>"][0] == "image-${SERVICE}"
    assert stages["python"][0] == "${DEBIAN_IMAGE}"
    assert "ARG DEBIAN_IMAGE=debian:bookworm-slim" in lines
    members = workspace_members()
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"] for p in lock["package"]}
    compose_args = {
        s["build"]["args"]["SERVICE"] for s in compose()["services"].values() if "build" in s
    }
    assert compose_args == {*SERVICES, "local"}
    for service in compose_args:
        package = f"weir-{service}"
        assert package in members and package in locked, package
        script = "weir-local-apiserver" if service == "local" else package
        assert script in console_scripts(members[package])
        base, body = stages[f"image-{service}"]
        assert f'ENTRYPOINT ["{script}"]' in body, service
        if service == "node-loader":
            assert base == "kernel"
        else:
            assert base == "unprivileged", f"{service} must not run as root"

    build = " ".join(stages["build"][1])
    assert 'uv sync --frozen --no-dev --no-install-workspace --package "weir-${SERVICE}"' in build
    assert 'uv sync --frozen --no-dev --package "weir-${SERVICE}"' in build
    # uv, from PyPI, at the version the dev machines use.
    uv_stage = " ".join(stages["uv"][1])
    assert 'pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"' in uv_stage
    setup = (ROOT / "deploy" / "local" / "setup.sh").read_text()
    (setup_uv,) = re.findall(r"^UV_VERSION=(\S+)", setup, re.MULTILINE)
    assert f"ARG UV_VERSION={setup_uv}" in stages["uv"][1]
    # Every member's manifest is in the dependency layer, or --frozen could not resolve it.
    copied = {line.split()[1] for line in stages["uv"][1] if line.startswith("COPY ")}
    for d in members.values():
        assert str((d / "pyproject.toml").relative_to(ROOT)) in copied, d


def test_dockerfile_node_loader_has_debian_bcc_only() -> None:
    stages = dockerfile_stages()
    kernel = " ".join(stages["kernel"][1])
    for package in ("python3-bpfcc", "iproute2", "bpftool"):
        assert re.search(rf"apt-get install .*\b{package}\b", kernel), package
    node = " ".join(stages["image-node-loader"][1])
    assert "ln -s /usr/lib/python3/dist-packages/bcc" in node
    assert "/opt/weir/cni/weir-cni" in node and "/opt/weir/cni/install-cni.sh" in node
    assert "COPY bpf /app/bpf" in stages["image-node-loader"][1]  # found as bpf_dir ""
    assert "USER" not in " ".join(line.split()[0] for line in stages["image-node-loader"][1])
    # The PyPI project named bcc is unrelated to BCC: it must never be in the lock.
    locked = {p["name"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    assert "bcc" not in locked
    # Only Debian's python3: the venv and python3-bpfcc must share one interpreter.
    assert "UV_PYTHON=/usr/bin/python3" in " ".join(stages["uv"][1])
    assert "UV_PYTHON_DOWNLOADS=never" in " ".join(stages["uv"][1])


def test_dockerignore_keeps_everything_the_dockerfile_copies() -> None:
    kept = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = []
    for line in dockerfile_lines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += [p for p in line.split()[1:-1] if not p.startswith("--")]
    assert sources
    for source in sources:
        assert any(source == k or source.startswith(k + "/") for k in kept), source
        assert (ROOT / source).exists(), source


# The directories the Dockerfile's cni stage builds in; the test builds under tmp_path instead.
CNI_STAGE_DIRS = ("/build", "/out")
# What weir-cni may import from the weir package: its two stdlib-only contract modules.
CNI_WEIR_MODULES = {"weir.endpoint_api", "weir.cni_config"}


def build_cni_zipapp(tmp_path: Path) -> tuple[Path, Path]:
    """Run the Dockerfile's cni stage here: its COPYs from the repository (less what
    .dockerignore drops), then its RUN commands under sh, with the stage's directories moved
    under tmp_path and `python3` this venv's base interpreter (the standard library only, as
    on a node). Returns (the zipapp the node-loader image copies, a PATH dir with python3)."""
    base, body = dockerfile_stages()["cni"]
    assert base == "python", "the plugin is built with the images' python3 only"
    python = Path(getattr(sys, "_base_executable", sys.executable))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(python)
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")

    def here(path: str) -> Path:
        assert path.startswith(tuple(d + "/" for d in CNI_STAGE_DIRS)), path
        return tmp_path / path.lstrip("/")

    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    for line in body:
        instruction, _, rest = line.partition(" ")
        if instruction == "COPY":
            *sources, dest = rest.split()
            assert not [s for s in sources if s.startswith("--")], line
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, here(dest.rstrip("/")), ignore=ignore)
                else:
                    target = here(dest.rstrip("/"))
                    if dest.endswith("/"):
                        target.mkdir(parents=True, exist_ok=True)
                        target = target / src.name
                    shutil.copy(src, target)
        elif instruction == "RUN":
            script = re.sub(
                r"(?<![\w/.])(" + "|".join(map(re.escape, CNI_STAGE_DIRS)) + r")(?=/|\s|$)",
                lambda m: str(tmp_path / m.group(1).lstrip("/")),
                rest,
            )
            done = subprocess.run(
                ["sh", "-ec", script],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        else:
            raise AssertionError(f"the cni stage should only COPY and RUN: {line}")
    (copy,) = [line for line in dockerfile_stages()["image-node-loader"][1] if "--from=cni" in line]
    _, _, artifact, destination = copy.split()
    assert destination == "/opt/weir/cni/weir-cni"
    return here(artifact), bin_dir


def run_plugin(
    plugin: Path, bin_dir: Path, env: dict[str, str], stdin: str = ""
) -> tuple[int, dict[str, Any]]:
    """Execute the zipapp as a runtime does (by its #! line) with exactly `env` and PATH."""
    done = subprocess.run(
        [str(plugin)],
        input=stdin,
        env={**env, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, out


def test_cni_plugin_zipapp_bundles_weir_cni_and_two_stdlib_only_modules(tmp_path: Path) -> None:
    plugin, _ = build_cni_zipapp(tmp_path)
    assert os.access(plugin, os.X_OK)
    assert plugin.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    cni_src = workspace_members()["weir-cni"] / "src" / "weir_cni"
    modules = {f"weir_cni/{p.stem}" for p in cni_src.glob("*.py")}
    modules |= {"weir/__init__"} | {m.replace(".", "/") for m in CNI_WEIR_MODULES}
    with zipfile.ZipFile(plugin) as archive:
        names = {n for n in archive.namelist() if not n.endswith("/")}
        # Each module's source, and its bytecode under the legacy name zipimport looks for.
        assert names == {"__main__.py"} | {f"{m}{ext}" for m in modules for ext in (".py", ".pyc")}
        for name in sorted(n for n in names if n.endswith(".pyc")):
            header = archive.read(name)[:8]
            # This interpreter's (3.11, as on the nodes) and unchecked-hash: loaded as they are.
            assert header[:4] == importlib.util.MAGIC_NUMBER, name
            assert int.from_bytes(header[4:8], "little") == 0b01, name
        imported: set[str] = set()
        for name in sorted(n for n in names if n.endswith(".py")):
            for node in ast.walk(ast.parse(archive.read(name), filename=name)):
                if isinstance(node, ast.Import):
                    imported |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module)
    # The standard library, the plugin itself and weir's two contract modules: nothing that
    # the node's python3 would lack.
    ours = {m for m in imported if m.split(".")[0] in ("weir", "weir_cni")}
    assert {m for m in ours if m.split(".")[0] == "weir"} <= CNI_WEIR_MODULES | {"weir"}
    assert {m.split(".")[0] for m in imported - ours} <= sys.stdlib_module_names


def test_cni_plugin_zipapp_runs_on_a_bare_python3(tmp_path: Path) -> None:
    plugin, bin_dir = build_cni_zipapp(tmp_path / "build")

    code, out = run_plugin(plugin, bin_dir, {"CNI_COMMAND": "VERSION"})
    assert code == 0, out
    assert out["cniVersion"] == "1.0.0"
    assert {"0.4.0", "1.0.0", "1.1.0"} <= set(out["supportedVersions"])

    # ADD as the runtime calls it: node-loader's conflist entry on stdin, named and versioned.
    ipam = tmp_path / "ipam"
    conflist = cni_config.conflist(
        cni_config.PluginConfig(
            node_loader_socket=str(tmp_path / "node-loader.sock"),
            subnet="10.244.1.0/24",
            ipam_data_dir=str(ipam),
        )
    )
    netconf = {
        "cniVersion": conflist["cniVersion"],
        "name": conflist["name"],
        **conflist["plugins"][0],
    }
    add = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "0123456789abcdef",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
    }
    # No CNI_NETNS at all: an invalid environment (4).
    code, out = run_plugin(plugin, bin_dir, add, json.dumps(netconf))
    assert code == 1
    assert (out["cniVersion"], out["code"]) == ("1.0.0", 4), out
    assert "CNI_NETNS" in out["msg"]
    # A CNI_NETNS that does not exist: the container is unknown (3), and nothing was made.
    missing = {**add, "CNI_NETNS": str(tmp_path / "netns" / "gone")}
    code, out = run_plugin(plugin, bin_dir, missing, json.dumps(netconf))
    assert code == 1
    assert (out["cniVersion"], out["code"]) == ("1.0.0", 3), out
    assert not ipam.exists()


def test_install_cni_script_installs_only_the_plugin(tmp_path: Path) -> None:
    image = tmp_path / "opt" / "weir" / "cni"
    image.mkdir(parents=True)
    shutil.copy(INSTALL_CNI, image / "install-cni.sh")
    bin_dir = tmp_path / "host" / "opt" / "cni" / "bin"

    def install(plugin: str) -> None:
        (image / "weir-cni").write_text(plugin)
        done = subprocess.run(
            ["sh", str(image / "install-cni.sh"), str(bin_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        installed = bin_dir / "weir-cni"
        assert stat.S_IMODE(installed.stat().st_mode) == 0o755
        assert installed.read_text() == plugin
        # No conflist, no temporary file left: the plugin alone.
        assert sorted(p.name for p in bin_dir.parent.parent.rglob("*") if p.is_file()) == [
            "weir-cni"
        ]

    install("#!/bin/sh\necho old\n")
    install("#!/bin/sh\necho new\n")  # an upgrade replaces it
    assert os.access(INSTALL_CNI, os.X_OK)
    for args in ([], [str(bin_dir), "/etc/cni/net.d", "05-weir.conflist", "weir.conflist"]):
        usage = subprocess.run(
            ["sh", str(INSTALL_CNI), *args], capture_output=True, text=True, check=False
        )
        assert usage.returncode == 2 and "usage" in usage.stderr


# --- the Tiltfile ---------------------------------------------------------------------------------


def tilt_services() -> dict[str, int]:
    """SERVICES from the Tiltfile (Starlark's syntax is a subset of Python's)."""
    tree = ast.parse(TILTFILE.read_text(), filename="Tiltfile")
    for node in tree.body:
        if isinstance(node, ast.Assign) and [
            t.id for t in node.targets if isinstance(t, ast.Name)
        ] == ["SERVICES"]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("Tiltfile has no SERVICES")


def test_tiltfile_builds_and_deploys_every_service() -> None:
    text = TILTFILE.read_text()
    tree = ast.parse(text, filename="Tiltfile")
    # Plain Starlark: no f-strings, classes, imports, try or while; only load() at the top.
    for node in ast.walk(tree):
        assert not isinstance(
            node, ast.JoinedStr | ast.ClassDef | ast.Import | ast.ImportFrom | ast.Try | ast.While
        ), ast.dump(node)[:80]
    assert set(tilt_services()) == set(SERVICES)
    assert "dockerfile='deploy/docker/Dockerfile'" in text
    assert "build_args={'SERVICE': service}" in text
    assert "helm(\n        'deploy/helm/weir'" in text
    assert "resource_deps=['weir-nats']" in text
    # The chart makes Weir the nodes' CNI by default; a plain `tilt up` must not (only --cni).
    assert yaml.safe_load((CHART / "values.yaml").read_text())["cni"]["install"] is True
    assert "'cni.install=' + ('true' if INSTALL_CNI else 'false')" in text
    assert "INSTALL_CNI = settings.get('cni', False)" in text
    registry = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["registry"]
    assert f"REGISTRY = '{registry}'" in text
    # live_update syncs each service's sources to where the image's editable installs live.
    assert "sync('libs/weir/src', '/app/libs/weir/src')" in text
    assert "sync(package_src, '/app/' + package_src)" in text
