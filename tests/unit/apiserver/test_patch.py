"""PATCH semantics: JSON merge patch, JSON patch and strategic merge patch as kube applies them.

Strategic cases are patches as kubectl (apply, patch, edit, set image, debug, cordon) and the
kubelet build them, the examples of the Kubernetes strategic-merge-patch documentation and
cases ported from k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go. Expected results
were checked against the real implementation: `test_strategic_cases_agree_with_kubectl` runs
every case through `kubectl patch --local` when the kubectl binary is there.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from weir_local.apiserver.patch import (
    FieldMeta,
    PatchError,
    json_merge_patch,
    json_patch,
    patch_meta,
    strategic_merge_patch,
)

# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def pod(
    spec: dict[str, Any] | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", **(metadata or {})},
        "spec": spec if spec is not None else {"containers": [ctr("web")]},
    }
    if status is not None:
        obj["status"] = status
    return obj


def ctr(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": fields.pop("image", f"img-{name}"), **fields}


def named(*names: str) -> list[dict[str, str]]:
    return [{"name": name} for name in names]


def node(**body: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, **body}


def service(**body: Any) -> dict[str, Any]:
    meta = {"name": "web", "namespace": "shop"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, **body}


def at(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def directive_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("$"):
                yield key
            yield from directive_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from directive_keys(item)


# --------------------------------------------------------------------------------------------
# Strategic merge patch: the case table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """`patch` applied to `original`; the result at `path` is `expected`, or it fails."""

    name: str
    original: dict[str, Any]
    patch: dict[str, Any]
    expected: Any = None
    path: tuple[str | int, ...] = ()
    error: str | None = None
    code: int = 400
    # False where kubectl cannot act as the reference (a Go panic, an undecodable result).
    oracle: bool = True


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

LIVE_WEB = pod(
    {
        "containers": [
            ctr(
                "web",
                image="nginx:1.25",
                imagePullPolicy="IfNotPresent",
                terminationMessagePath="/dev/termination-log",
                ports=[{"containerPort": 80, "protocol": "TCP"}],
                env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            )
        ],
        "nodeName": "node-a",
        "restartPolicy": "Always",
    },
    metadata={
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {LAST_APPLIED: "{old}", "other": "kept"},
        "finalizers": ["example.com/x", "example.com/y"],
    },
    status={"phase": "Running"},
)

KUBELET_CONDITIONS = [
    {"type": "PodReadyToStartContainers", "status": "True"},
    {"type": "Initialized", "status": "True"},
    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
    {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
    {"type": "PodScheduled", "status": "True"},
]

SMP_CASES: list[Case] = [
    # --- Kubernetes docs: "Update API Objects in Place Using kubectl patch" ------------------
    Case(
        "docs: containers merge by name and the new one comes first",
        pod({"containers": [ctr("patch-demo-ctr", image="nginx")]}),
        {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}},
        [
            {"name": "patch-demo-ctr-2", "image": "redis"},
            {"name": "patch-demo-ctr", "image": "nginx"},
        ],
        ("spec", "containers"),
    ),
    Case(
        "docs: tolerations have no strategy and are replaced",
        pod({"containers": [ctr("c")], "tolerations": [{"key": "a", "operator": "Exists"}]}),
        {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}},
        [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}],
        ("spec", "tolerations"),
    ),
    Case(
        "docs: $retainKeys clears the fields it does not name",
        pod({"containers": [ctr("c")], "volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}),
        {
            "spec": {
                "volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {}}]
            }
        },
        [{"name": "v", "configMap": {}}],
        ("spec", "volumes"),
    ),
    # --- Kubernetes docs: strategic-merge-patch.md --------------------------------------------
    Case(
        "design doc: $patch replace on a map takes it literally",
        pod({"containers": [ctr("a"), ctr("b")], "hostname": "h"}),
        {"spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}},
        {"containers": [{"name": "nginx", "image": "nginx-1.0"}]},
        ("spec",),
    ),
    Case(
        "design doc: $patch replace element replaces a merging list",
        pod({"containers": [ctr("a"), ctr("b")]}),
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}},
        [{"name": "nginx", "image": "nginx-1.0"}],
        ("spec", "containers"),
    ),
    Case(
        "design doc: $patch delete element removes it by merge key",
        pod({"containers": [ctr("nginx", image="nginx-0.9"), ctr("log-tailer")]}),
        {
            "spec": {
                "containers": [
                    {"name": "nginx", "image": "nginx-1.0"},
                    {"$patch": "delete", "name": "log-tailer"},
                ]
            }
        },
        [{"name": "nginx", "image": "nginx-1.0"}],
        ("spec", "containers"),
    ),
    Case(
        "design doc: $patch delete on a map empties it",
        pod({"containers": [ctr("c")], "securityContext": {"runAsUser": 1000}}),
        {"spec": {"securityContext": {"$patch": "delete"}}},
        {},
        ("spec", "securityContext"),
    ),
    Case(
        "design doc: a null deletes a map",
        pod({"containers": [ctr("c")], "securityContext": {"runAsUser": 1000}}),
        {"spec": {"securityContext": None}},
        {"containers": [ctr("c")]},
        ("spec",),
    ),
    Case(
        "design doc: $deleteFromPrimitiveList on finalizers",
        pod(metadata={"finalizers": ["a", "b", "c"]}),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}},
        ["a"],
        ("metadata", "finalizers"),
    ),
    Case(
        "design doc: $setElementOrder reorders a primitive list",
        pod(metadata={"finalizers": ["a", "b", "c"]}),
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}},
        ["b", "c", "a"],
        ("metadata", "finalizers"),
    ),
    Case(
        "design doc: $setElementOrder reorders a list of maps",
        pod({"containers": [ctr("a"), ctr("b"), ctr("c")]}),
        {"spec": {"$setElementOrder/containers": named("b", "c", "a")}},
        [ctr("b"), ctr("c"), ctr("a")],
        ("spec", "containers"),
    ),
    Case(
        "design doc: $retainKeys on a union",
        pod({"containers": [ctr("c")], "volumes": [{"name": "v", "emptyDir": {"medium": "x"}}]}),
        {
            "spec": {
                "volumes": [
                    {
                        "name": "v",
                        "$retainKeys": ["name", "secret"],
                        "secret": {"secretName": "s"},
                    }
                ]
            }
        },
        [{"name": "v", "secret": {"secretName": "s"}}],
        ("spec", "volumes"),
    ),
    # --- strategicpatch/patch_test.go, on Pod fields ------------------------------------------
    Case(
        "go: unique scalars when merging lists",
        pod(metadata={"finalizers": ["1", "2"]}),
        {"metadata": {"finalizers": ["2", "3"]}},
        ["1", "2", "3"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: delete map from nested map",
        pod(metadata={"labels": {"key1": "1", "key2": "1"}}),
        {"metadata": {"labels": {"$patch": "delete"}}},
        {},
        ("metadata", "labels"),
    ),
    Case(
        "go: delete all items from merging list",
        pod({"containers": [ctr("1"), ctr("2")]}),
        {"spec": {"containers": [{"$patch": "replace"}]}},
        [],
        ("spec", "containers"),
    ),
    Case(
        "go: merge empty merging lists",
        pod({"containers": [ctr("c")], "imagePullSecrets": []}),
        {"spec": {"imagePullSecrets": []}},
        [],
        ("spec", "imagePullSecrets"),
    ),
    Case(
        "go: delete all keys from map",
        pod(metadata={"labels": {"name": "1", "value": "1"}}),
        {"metadata": {"labels": {"$patch": "replace"}}},
        {},
        ("metadata", "labels"),
    ),
    Case(
        "go: add key and delete all keys from map",
        pod(metadata={"labels": {"name": "1", "value": "1"}}),
        {"metadata": {"labels": {"other": "a", "$patch": "replace"}}},
        {"other": "a"},
        ("metadata", "labels"),
    ),
    Case(
        "go: delete removes every entry with the merge key",
        pod({"containers": [ctr("1"), ctr("1"), ctr("2", workingDir="a"), ctr("3"), ctr("3")]}),
        {
            "spec": {
                "containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]
            }
        },
        [ctr("2", workingDir="a")],
        ("spec", "containers"),
    ),
    Case(
        "go: retainKeys list can add a field when no retainKeys directive present",
        pod({"containers": [ctr("c")], "volumes": [{"name": "bar"}, {"name": "foo"}]}),
        {"spec": {"volumes": [{"name": "foo", "emptyDir": {"medium": "Memory"}}]}},
        [{"name": "bar"}, {"name": "foo", "emptyDir": {"medium": "Memory"}}],
        ("spec", "volumes"),
    ),
    Case(
        "go: retainKeys list can delete a field when no retainKeys directive present",
        pod(
            {
                "containers": [ctr("c")],
                "volumes": [{"name": "bar"}, {"name": "foo", "emptyDir": {}}],
            }
        ),
        {"spec": {"volumes": [{"name": "foo", "emptyDir": None}]}},
        [{"name": "bar"}, {"name": "foo"}],
        ("spec", "volumes"),
    ),
    Case(
        "go: preserve the order from the patch in a merging list",
        pod({"containers": [ctr("1"), ctr("2", workingDir="b"), ctr("3")]}),
        {
            "spec": {
                "containers": [
                    {"name": "3", "workingDir": "c"},
                    {"name": "1", "workingDir": "a"},
                    {"name": "2", "tty": True},
                ]
            }
        },
        [
            ctr("3", workingDir="c"),
            ctr("1", workingDir="a"),
            ctr("2", workingDir="b", tty=True),
        ],
        ("spec", "containers"),
    ),
    Case(
        "go: preserve the order from the patch in a merging list 2",
        pod({"containers": [ctr("1"), ctr("2", workingDir="b"), ctr("3")]}),
        {
            "spec": {
                "containers": [
                    {"name": "3", "workingDir": "c"},
                    {"name": "1", "workingDir": "a"},
                ]
            }
        },
        [ctr("2", workingDir="b"), ctr("3", workingDir="c"), ctr("1", workingDir="a")],
        ("spec", "containers"),
    ),
    Case(
        "go: preserve the order from the patch in a merging int list",
        pod(metadata={"finalizers": ["1", "2", "3"]}),
        {"metadata": {"finalizers": ["3", "1", "2"]}},
        ["3", "1", "2"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: preserve the order from the patch in a merging int list 2",
        pod(metadata={"finalizers": ["1", "2", "3"]}),
        {"metadata": {"finalizers": ["3", "1"]}},
        ["2", "3", "1"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: $setElementOrder contains an element the list lacks",
        pod({"containers": [ctr("1"), ctr("3")]}),
        {
            "spec": {
                "$setElementOrder/containers": named("3", "2", "1"),
                "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}],
            }
        },
        [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}],
        ("spec", "containers"),
    ),
    Case(
        "go: $setElementOrder contains a value the primitive list lacks",
        pod(metadata={"finalizers": ["1", "3"]}),
        {"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}},
        ["3", "1"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: delete items in lists of scalars (three-way)",
        pod(metadata={"finalizers": ["1", "2", "3", "4"]}),
        {
            "metadata": {
                "$setElementOrder/finalizers": ["1", "2"],
                "$deleteFromPrimitiveList/finalizers": ["3"],
            }
        },
        ["1", "2", "4"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: delete all duplicate items in lists of scalars",
        pod(metadata={"finalizers": ["1", "2", "3", "3", "4"]}),
        {
            "metadata": {
                "$setElementOrder/finalizers": ["1", "2"],
                "$deleteFromPrimitiveList/finalizers": ["3"],
            }
        },
        ["1", "2", "4"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: add and delete items in lists of scalars",
        pod(metadata={"finalizers": ["1", "2", "3"]}),
        {
            "metadata": {
                "$setElementOrder/finalizers": ["1", "2", "4"],
                "$deleteFromPrimitiveList/finalizers": ["3"],
                "finalizers": ["4"],
            }
        },
        ["1", "2", "4"],
        ("metadata", "finalizers"),
    ),
    Case(
        "go: merge lists of maps (three-way, live has extra fields)",
        pod({"containers": [ctr("1", tty=True), ctr("2", workingDir="2", stdin=True)]}),
        {
            "spec": {
                "$setElementOrder/containers": named("4", "1", "2", "3"),
                "containers": [{"name": "4", "image": "4"}, {"name": "3", "image": "3"}],
            }
        },
        [
            {"name": "4", "image": "4"},
            ctr("1", tty=True),
            ctr("2", workingDir="2", stdin=True),
            {"name": "3", "image": "3"},
        ],
        ("spec", "containers"),
    ),
    Case(
        "go: merge lists of maps with conflict",
        pod({"containers": [ctr("1", tty=True), ctr("2", workingDir="3", stdin=True)]}),
        {
            "spec": {
                "$setElementOrder/containers": named("1", "2", "3"),
                "containers": [{"name": "2", "workingDir": "2"}, {"name": "3", "image": "3"}],
            }
        },
        [
            ctr("1", tty=True),
            ctr("2", workingDir="2", stdin=True),
            {"name": "3", "image": "3"},
        ],
        ("spec", "containers"),
    ),
    Case(
        "go: add field and delete field from map",
        pod(metadata={"labels": {"name": "1", "other": "a"}}),
        {"metadata": {"labels": {"name": None, "value": "1"}}},
        {"other": "a", "value": "1"},
        ("metadata", "labels"),
    ),
    Case(
        "go: delete all maps from an already empty merging list",
        pod({"containers": [ctr("c")], "imagePullSecrets": []}),
        {
            "spec": {
                "imagePullSecrets": [
                    {"name": "1", "$patch": "delete"},
                    {"name": "2", "$patch": "delete"},
                ]
            }
        },
        [],
        ("spec", "imagePullSecrets"),
    ),
    Case(
        "go: defined null values propagate, removing fields",
        pod(metadata={"labels": {"name": "original", "value": "v", "other": "current"}}),
        {"metadata": {"labels": {"name": "modified", "value": None}}},
        {"name": "modified", "other": "current"},
        ("metadata", "labels"),
    ),
    # --- kubectl apply: three-way patches as CreateThreeWayMergePatch builds them ------------
    Case(
        "kubectl apply: add a port, change an env var, drop a label",
        LIVE_WEB,
        {
            "metadata": {
                "annotations": {LAST_APPLIED: "{new}"},
                "labels": {"tier": None},
            },
            "spec": {
                "$setElementOrder/containers": named("web"),
                "containers": [
                    {
                        "$setElementOrder/env": named("A", "B"),
                        "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                        "env": [{"name": "B", "value": "3"}],
                        "name": "web",
                        "ports": [{"containerPort": 443}],
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web"},
                "annotations": {LAST_APPLIED: "{new}", "other": "kept"},
                "finalizers": ["example.com/x", "example.com/y"],
            },
            "spec": {
                "containers": [
                    ctr(
                        "web",
                        image="nginx:1.25",
                        imagePullPolicy="IfNotPresent",
                        terminationMessagePath="/dev/termination-log",
                        ports=[
                            {"containerPort": 80, "protocol": "TCP"},
                            {"containerPort": 443},
                        ],
                        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
                    )
                ],
                "nodeName": "node-a",
                "restartPolicy": "Always",
            },
            "status": {"phase": "Running"},
        },
    ),
    Case(
        "kubectl apply: remove the ports and an env var",
        LIVE_WEB,
        {
            "spec": {
                "$setElementOrder/containers": named("web"),
                "containers": [
                    {
                        "$setElementOrder/env": named("B"),
                        "env": [{"$patch": "delete", "name": "A"}],
                        "name": "web",
                        "ports": None,
                    }
                ],
            }
        },
        [
            ctr(
                "web",
                image="nginx:1.25",
                imagePullPolicy="IfNotPresent",
                terminationMessagePath="/dev/termination-log",
                env=[{"name": "B", "value": "2"}],
            )
        ],
        ("spec", "containers"),
    ),
    Case(
        "kubectl apply: remove a finalizer",
        LIVE_WEB,
        {
            "metadata": {
                "$setElementOrder/finalizers": ["example.com/y"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/x"],
            }
        },
        ["example.com/y"],
        ("metadata", "finalizers"),
    ),
    Case(
        "kubectl apply: reorder containers only",
        pod({"containers": [ctr("a"), ctr("b"), ctr("c"), ctr("sidecar")]}),
        {"spec": {"$setElementOrder/containers": named("c", "a", "b")}},
        [ctr("c"), ctr("a"), ctr("b"), ctr("sidecar")],
        ("spec", "containers"),
    ),
    Case(
        "kubectl apply: switch a volume source with $retainKeys",
        pod(
            {
                "containers": [ctr("c")],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "secret": {}}],
            }
        ),
        {
            "spec": {
                "$setElementOrder/volumes": named("data", "cfg"),
                "volumes": [
                    {
                        "$retainKeys": ["configMap", "name"],
                        "configMap": {"name": "settings"},
                        "emptyDir": None,
                        "name": "data",
                    }
                ],
            }
        },
        [{"name": "data", "configMap": {"name": "settings"}}, {"name": "cfg", "secret": {}}],
        ("spec", "volumes"),
    ),
    Case(
        "kubectl apply: add an init container and keep the live sidecar order",
        pod({"containers": [ctr("app")], "initContainers": [ctr("setup")]}),
        {
            "spec": {
                "$setElementOrder/initContainers": named("migrate", "setup"),
                "initContainers": [{"name": "migrate", "image": "m"}],
            }
        },
        [{"name": "migrate", "image": "m"}, ctr("setup")],
        ("spec", "initContainers"),
    ),
    # --- kubectl two-way patches (edit, set image, debug, label via edit) ---------------------
    Case(
        "kubectl set image: one container of two",
        pod({"containers": [ctr("a", image="a:1"), ctr("b", image="b:1")]}),
        {
            "spec": {
                "$setElementOrder/containers": named("a", "b"),
                "containers": [{"image": "b:2", "name": "b"}],
            }
        },
        [ctr("a", image="a:1"), ctr("b", image="b:2")],
        ("spec", "containers"),
    ),
    Case(
        "kubectl edit: change a label, remove an annotation",
        pod(metadata={"labels": {"a": "1", "b": "2"}, "annotations": {"x": "1", "y": "2"}}),
        {"metadata": {"annotations": {"x": None}, "labels": {"a": "2"}}},
        {
            "name": "web",
            "namespace": "default",
            "labels": {"a": "2", "b": "2"},
            "annotations": {"y": "2"},
        },
        ("metadata",),
    ),
    Case(
        "kubectl debug: add an ephemeral container",
        pod(
            {
                "containers": [ctr("app")],
                "ephemeralContainers": [{"name": "debugger-1", "image": "busybox"}],
            }
        ),
        {
            "spec": {
                "ephemeralContainers": [
                    {
                        "name": "debugger-2",
                        "image": "busybox",
                        "targetContainerName": "app",
                        "stdin": True,
                        "tty": True,
                    }
                ]
            }
        },
        [
            {
                "name": "debugger-2",
                "image": "busybox",
                "targetContainerName": "app",
                "stdin": True,
                "tty": True,
            },
            {"name": "debugger-1", "image": "busybox"},
        ],
        ("spec", "ephemeralContainers"),
    ),
    Case(
        "kubectl patch: merge ownerReferences by uid",
        pod(
            metadata={
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1"}]
            }
        ),
        {
            "metadata": {
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "b", "uid": "2"}]
            }
        },
        [
            {"apiVersion": "v1", "kind": "X", "name": "b", "uid": "2"},
            {"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1"},
        ],
        ("metadata", "ownerReferences"),
    ),
    Case(
        "kubectl patch: container fields merge by their own keys",
        pod(
            {
                "containers": [
                    ctr(
                        "c",
                        volumeMounts=[{"name": "v", "mountPath": "/a"}],
                        volumeDevices=[{"name": "d", "devicePath": "/dev/x"}],
                        envFrom=[{"configMapRef": {"name": "one"}}],
                    )
                ]
            }
        ),
        {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "volumeMounts": [{"name": "v", "mountPath": "/a", "readOnly": True}],
                        "volumeDevices": [{"name": "e", "devicePath": "/dev/y"}],
                        "envFrom": [{"secretRef": {"name": "two"}}],
                    }
                ]
            }
        },
        [
            ctr(
                "c",
                volumeMounts=[{"name": "v", "mountPath": "/a", "readOnly": True}],
                volumeDevices=[
                    {"name": "e", "devicePath": "/dev/y"},
                    {"name": "d", "devicePath": "/dev/x"},
                ],
                envFrom=[{"secretRef": {"name": "two"}}],
            )
        ],
        ("spec", "containers"),
    ),
    Case(
        "kubectl patch: podspec lists with their own merge keys",
        pod(
            {
                "containers": [ctr("c")],
                "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}],
                "imagePullSecrets": [{"name": "reg"}],
                "schedulingGates": [{"name": "g1"}, {"name": "g2"}],
                "topologySpreadConstraints": [
                    {"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
                ],
                "readinessGates": [{"conditionType": "a"}],
            }
        ),
        {
            "spec": {
                "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["b"]}, {"ip": "5.6.7.8"}],
                "imagePullSecrets": [{"name": "other"}],
                "schedulingGates": [{"name": "g1", "$patch": "delete"}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}],
                "readinessGates": [{"conditionType": "b"}],
            }
        },
        {
            "containers": [ctr("c")],
            "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["b"]}, {"ip": "5.6.7.8"}],
            "imagePullSecrets": [{"name": "other"}, {"name": "reg"}],
            "schedulingGates": [{"name": "g2"}],
            "topologySpreadConstraints": [
                {"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}
            ],
            "readinessGates": [{"conditionType": "b"}],
        },
        ("spec",),
    ),
    Case(
        "quirk kept from kube: ports merge by containerPort alone, across protocols",
        pod(
            {
                "containers": [
                    ctr(
                        "dns",
                        ports=[
                            {"containerPort": 53, "protocol": "TCP"},
                            {"containerPort": 53, "protocol": "UDP"},
                        ],
                    )
                ]
            }
        ),
        {"spec": {"containers": [{"name": "dns", "ports": [{"containerPort": 53, "name": "d"}]}]}},
        [
            {"containerPort": 53, "protocol": "TCP", "name": "d"},
            {"containerPort": 53, "protocol": "UDP"},
        ],
        ("spec", "containers", 0, "ports"),
    ),
    # --- the kubelet's status patches -----------------------------------------------------------
    Case(
        "kubelet: pod status with condition order, IPs and container statuses",
        pod(
            status={
                "phase": "Pending",
                "conditions": [KUBELET_CONDITIONS[4]],
                "qosClass": "BestEffort",
            }
        ),
        {
            "status": {
                "$setElementOrder/conditions": [{"type": c["type"]} for c in KUBELET_CONDITIONS],
                "conditions": KUBELET_CONDITIONS[:4],
                "containerStatuses": [
                    {"name": "web", "ready": False, "restartCount": 0, "image": "nginx"}
                ],
                "hostIP": "192.168.1.10",
                "hostIPs": [{"ip": "192.168.1.10"}],
                "phase": "Running",
                "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
            }
        },
        {
            "phase": "Running",
            "conditions": KUBELET_CONDITIONS,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {"name": "web", "ready": False, "restartCount": 0, "image": "nginx"}
            ],
            "hostIP": "192.168.1.10",
            "hostIPs": [{"ip": "192.168.1.10"}],
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
        },
        ("status",),
    ),
    Case(
        "kubelet: a ready pod flips one condition; containerStatuses are atomic",
        pod(
            status={
                "conditions": KUBELET_CONDITIONS,
                "containerStatuses": [
                    {"name": "web", "ready": False, "restartCount": 0, "started": False}
                ],
            }
        ),
        {
            "status": {
                "$setElementOrder/conditions": [{"type": c["type"]} for c in KUBELET_CONDITIONS],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": None},
                    {"type": "ContainersReady", "status": "True", "reason": None},
                ],
                "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0}],
            }
        },
        {
            "conditions": [
                KUBELET_CONDITIONS[0],
                KUBELET_CONDITIONS[1],
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                KUBELET_CONDITIONS[4],
            ],
            "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0}],
        },
        ("status",),
    ),
    Case(
        "kubelet: node status heartbeat and addresses",
        node(
            status={
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "node-a"},
                ],
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t1"},
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"},
                ],
                "images": [{"names": ["a"]}],
            }
        ),
        {
            "status": {
                "$setElementOrder/addresses": [{"type": "InternalIP"}, {"type": "Hostname"}],
                "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.11"}],
                "conditions": [
                    {"type": "MemoryPressure", "lastHeartbeatTime": "t2"},
                    {"type": "Ready", "lastHeartbeatTime": "t2"},
                ],
                "images": [{"names": ["b"]}],
            }
        },
        {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.11"},
                {"type": "Hostname", "address": "node-a"},
            ],
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t2"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"},
            ],
            "images": [{"names": ["b"]}],
        },
        ("status",),
    ),
    # --- other served kinds ---------------------------------------------------------------------
    Case(
        "kubectl cordon: node spec",
        node(spec={"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"]}),
        {"spec": {"unschedulable": True}},
        {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"], "unschedulable": True},
        ("spec",),
    ),
    Case(
        "node: podCIDRs is a set, taints are replaced",
        node(spec={"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]}),
        {
            "spec": {
                "podCIDRs": ["fd00::/64"],
                "taints": [{"key": "b", "effect": "NoExecute"}],
            }
        },
        {"podCIDRs": ["fd00::/64", "10.0.0.0/24"], "taints": [{"key": "b", "effect": "NoExecute"}]},
        ("spec",),
    ),
    Case(
        "service: kubectl apply adds a port in order",
        service(spec={"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53}]}),
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}, {"port": 53}],
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
            }
        },
        [
            {"name": "http", "port": 80},
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "dns", "port": 53},
        ],
        ("spec", "ports"),
    ),
    Case(
        "service: ports merge by port; selector merges; externalIPs are replaced",
        service(
            spec={
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                "selector": {"app": "web", "tier": "a"},
                "externalIPs": ["1.1.1.1"],
            }
        ),
        {
            "spec": {
                "ports": [{"port": 80, "targetPort": 9090}],
                "selector": {"tier": None},
                "externalIPs": ["2.2.2.2"],
            }
        },
        {
            "ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP"}],
            "selector": {"app": "web"},
            "externalIPs": ["2.2.2.2"],
        },
        ("spec",),
    ),
    Case(
        "service: status conditions merge by type, load balancer ingress is replaced",
        service(
            status={
                "conditions": [{"type": "A", "status": "True"}],
                "loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]},
            }
        ),
        {
            "status": {
                "conditions": [{"type": "B", "status": "False"}],
                "loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]},
            }
        },
        {
            "conditions": [{"type": "B", "status": "False"}, {"type": "A", "status": "True"}],
            "loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]},
        },
        ("status",),
    ),
    Case(
        "namespace: spec.finalizers are replaced, status conditions merge",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "finalizers": ["a"]},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active", "conditions": [{"type": "A", "status": "True"}]},
        },
        {
            "metadata": {"finalizers": ["b"]},
            "spec": {"finalizers": ["other"]},
            "status": {"phase": "Terminating", "conditions": [{"type": "B", "status": "True"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "finalizers": ["b", "a"]},
            "spec": {"finalizers": ["other"]},
            "status": {
                "phase": "Terminating",
                "conditions": [{"type": "B", "status": "True"}, {"type": "A", "status": "True"}],
            },
        },
    ),
    Case(
        "endpointslice: endpoints and ports are replaced, ownerReferences merge",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abc",
                "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "1"}
                ],
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
        {
            "metadata": {
                "labels": {"endpointslice.kubernetes.io/managed-by": "weir"},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": "web",
                        "uid": "1",
                        "controller": True,
                    }
                ],
            },
            "endpoints": [{"addresses": ["10.0.0.2"]}],
            "ports": [{"name": "https", "port": 443}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abc",
                "namespace": "shop",
                "labels": {
                    "kubernetes.io/service-name": "web",
                    "endpointslice.kubernetes.io/managed-by": "weir",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": "web",
                        "uid": "1",
                        "controller": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.2"]}],
            "ports": [{"name": "https", "port": 443}],
        },
    ),
    Case(
        "networkpolicy: rules and policyTypes are replaced, selectors merge as maps",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
            },
        },
        {
            "spec": {
                "podSelector": {"matchLabels": {"tier": "a"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"port": 80}]}],
                "egress": [],
            }
        },
        {
            "podSelector": {"matchLabels": {"app": "web", "tier": "a"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 80}]}],
            "egress": [],
        },
        ("spec",),
    ),
    Case(
        "event: an event recorder's count update",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "BackOff",
            "count": 1,
            "lastTimestamp": "2024-01-01T00:00:00Z",
            "type": "Warning",
        },
        {"count": 2, "lastTimestamp": "2024-01-01T00:01:00Z", "message": "Back-off"},
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "BackOff",
            "count": 2,
            "lastTimestamp": "2024-01-01T00:01:00Z",
            "type": "Warning",
            "message": "Back-off",
        },
    ),
    # --- directives and values where nothing exists to merge into ------------------------------
    Case(
        "new map: nulls dropped",
        pod(),
        {"spec": {"securityContext": {"runAsUser": None, "runAsGroup": 3}}},
        {"runAsGroup": 3},
        ("spec", "securityContext"),
    ),
    Case(
        "new map: $patch delete leaves the field out",
        pod(),
        {"spec": {"securityContext": {"$patch": "delete"}}},
        {"containers": [ctr("web")]},
        ("spec",),
    ),
    Case(
        "new map: $patch replace leaves the field out, as kube does",
        pod(),
        {"spec": {"securityContext": {"$patch": "replace", "runAsUser": 5}}},
        {"containers": [ctr("web")]},
        ("spec",),
    ),
    Case(
        "new list: elements carrying $patch are dropped",
        pod({"containers": [ctr("c")]}),
        {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}],
                    }
                ]
            }
        },
        [ctr("c", env=[{"name": "A", "value": "1"}])],
        ("spec", "containers"),
    ),
    Case(
        "new list: taken as sent, duplicates and order included",
        pod(),
        {"metadata": {"finalizers": ["b", "a", "b"]}},
        ["b", "a", "b"],
        ("metadata", "finalizers"),
    ),
    Case(
        "new list with $setElementOrder: $patch elements dropped",
        pod(),
        {
            "metadata": {
                "$setElementOrder/ownerReferences": [{"uid": "2"}, {"uid": "1"}],
                "ownerReferences": [
                    {"uid": "3", "$patch": "delete"},
                    {"uid": "2", "name": "b", "kind": "K", "apiVersion": "v1"},
                    {"uid": "1", "name": "a", "kind": "K", "apiVersion": "v1"},
                ],
            }
        },
        [
            {"uid": "2", "name": "b", "kind": "K", "apiVersion": "v1"},
            {"uid": "1", "name": "a", "kind": "K", "apiVersion": "v1"},
        ],
        ("metadata", "ownerReferences"),
    ),
    Case(
        "appended element: taken as it stands, its order directives ignored",
        pod(),
        {
            "spec": {
                "containers": [
                    {
                        "name": "new",
                        "image": "x",
                        "$setElementOrder/env": named("B", "A"),
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    }
                ]
            }
        },
        [
            ctr("new", image="x", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ctr("web"),
        ],
        ("spec", "containers"),
    ),
    Case(
        "replaced map: nested directive maps become empty, as decoding leaves them",
        pod({"containers": [ctr("c")], "securityContext": {"runAsUser": 1}}),
        {
            "spec": {
                "securityContext": {
                    "$patch": "replace",
                    "runAsGroup": 2,
                    "seLinuxOptions": {"$patch": "delete"},
                }
            }
        },
        {"runAsGroup": 2, "seLinuxOptions": {}},
        ("spec", "securityContext"),
    ),
    Case(
        "replaced list: directive keys of its elements are dropped",
        pod({"containers": [ctr("c")], "tolerations": [{"key": "a"}]}),
        {"spec": {"tolerations": [{"key": "b", "$patch": "delete"}, {"key": "c"}]}},
        [{"key": "b"}, {"key": "c"}],
        ("spec", "tolerations"),
    ),
    Case(
        "$patch replace on the whole object",
        pod(metadata={"labels": {"a": "b"}}),
        {
            "$patch": "replace",
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "q"},
            "spec": {"containers": [ctr("z")]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "q"},
            "spec": {"containers": [ctr("z")]},
        },
    ),
    Case(
        "a changed type is replaced by the patch value",
        pod(metadata={"labels": {"a": "1"}}),
        {"metadata": {"labels": ["not", "a", "map"]}},
        ["not", "a", "map"],
        ("metadata", "labels"),
        oracle=False,  # kubectl cannot decode the result into a Pod
    ),
    Case(
        "$deleteFromPrimitiveList on a missing list does nothing",
        pod(),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
        {"name": "web", "namespace": "default"},
        ("metadata",),
    ),
    Case(
        "$setElementOrder on a list without strategy is ignored",
        pod({"containers": [ctr("c")], "tolerations": [{"key": "a"}, {"key": "b"}]}),
        {"spec": {"$setElementOrder/tolerations": [{"key": "b"}, {"key": "a"}]}},
        [{"key": "a"}, {"key": "b"}],
        ("spec", "tolerations"),
        oracle=False,  # kube panics (hash of unhashable type) and answers 500
    ),
    # --- errors ---------------------------------------------------------------------------------
    Case(
        "error: element without its merge key",
        pod({"containers": [ctr("1")]}),
        {"spec": {"containers": [{"image": "b"}]}},
        error="map: map[image:b] does not contain declared merge key: name",
    ),
    Case(
        "error: live element without the merge key",
        pod({"containers": [{"image": "i"}]}),
        {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        error="map: map[image:i] does not contain declared merge key: name",
    ),
    Case(
        "error: $patch delete element without the merge key",
        pod({"containers": [ctr("1")]}),
        {"spec": {"containers": [{"$patch": "delete"}]}},
        error="map: map[$patch:delete] does not contain declared merge key: name",
    ),
    Case(
        "error: patch order contradicts $setElementOrder",
        pod({"containers": [ctr("1"), ctr("3"), ctr("2")]}),
        {
            "spec": {
                "$setElementOrder/containers": named("1", "2", "3"),
                "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}],
            }
        },
        error=(
            "The order in patch list:\n[map[image:3 name:3] map[image:1 name:1]]\n doesn't "
            "match $setElementOrder list:\n[map[name:1] map[name:2] map[name:3]]\n"
        ),
    ),
    Case(
        "error: primitive order contradicts $setElementOrder",
        pod(metadata={"finalizers": ["1", "3", "2"]}),
        {"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}},
        error="The order in patch list:\n[3 1]\n doesn't match $setElementOrder list:\n[1 2 3]\n",
    ),
    Case(
        "error: $patch merge is not a directive",
        pod(metadata={"labels": {"a": "1"}}),
        {"metadata": {"labels": {"$patch": "merge", "b": "2"}}},
        error="unknown patch type: merge in map: map[$patch:merge b:2]",
    ),
    Case(
        "error: $patch merge in a list",
        pod({"containers": [ctr("1")]}),
        {"spec": {"containers": [{"$patch": "merge"}, {"name": "2", "image": "x"}]}},
        error="merging lists cannot yet be specified in the patch",
    ),
    Case(
        "error: unknown $patch",
        pod(metadata={"labels": {"a": "1"}}),
        {"metadata": {"labels": {"$patch": "bogus"}}},
        error="unknown patch type: bogus in map: map[$patch:bogus]",
    ),
    Case(
        "error: field outside $retainKeys",
        pod({"containers": [ctr("c")], "volumes": [{"name": "v", "emptyDir": {}}]}),
        {
            "spec": {
                "volumes": [{"name": "v", "$retainKeys": ["name"], "configMap": {"name": "cm"}}]
            }
        },
        error="invalid patch format of retainKeys",
    ),
    Case(
        "error: $retainKeys is not a list",
        pod({"containers": [ctr("c")], "volumes": [{"name": "v", "emptyDir": {}}]}),
        {"spec": {"volumes": [{"name": "v", "$retainKeys": "name"}]}},
        error="invalid patch format of retainKeys",
    ),
    Case(
        "error: malformed $deleteFromPrimitiveList key",
        pod(metadata={"finalizers": ["a"]}),
        {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}},
        error="invalid patch format of primitive list",
    ),
    Case(
        "error: malformed $setElementOrder key",
        pod(metadata={"finalizers": ["a"]}),
        {"metadata": {"$setElementOrderfinalizers": ["a"]}},
        error="invalid patch format of setElementOrder list",
    ),
    Case(
        "error: lists of lists",
        pod(metadata={"finalizers": ["a"]}),
        {"metadata": {"finalizers": [["b"]]}},
        error="list element types are not identical: [[a] [[b]]]",
    ),
    Case(
        "error: list element types differ",
        pod(metadata={"finalizers": ["a"]}),
        {"metadata": {"finalizers": [{"a": 1}]}},
        error="list element types are not identical: [[a] [map[a:1]]]",
    ),
]


def _case_id(case: Case) -> str:
    return case.name


@pytest.mark.parametrize("case", [c for c in SMP_CASES if c.error is None], ids=_case_id)
def test_strategic_merge_patch(case: Case) -> None:
    result = strategic_merge_patch(case.original, case.patch, case.original["kind"])
    assert at(result, case.path) == case.expected
    assert list(directive_keys(result)) == []


@pytest.mark.parametrize("case", [c for c in SMP_CASES if c.error is not None], ids=_case_id)
def test_strategic_merge_patch_errors(case: Case) -> None:
    with pytest.raises(PatchError) as caught:
        strategic_merge_patch(case.original, case.patch, case.original["kind"])
    assert str(caught.value) == case.error
    assert caught.value.code == case.code


@pytest.mark.parametrize("case", SMP_CASES, ids=_case_id)
def test_strategic_merge_patch_leaves_its_inputs_alone(case: Case) -> None:
    original, patch = copy.deepcopy(case.original), copy.deepcopy(case.patch)
    try:
        result = strategic_merge_patch(original, patch, case.original["kind"])
    except PatchError:
        result = None
    assert original == case.original
    assert patch == case.patch
    if result is not None:
        # The result shares nothing mutable with the inputs.
        result.setdefault("metadata", {})["name"] = "changed"
        assert original == case.original


def test_lists_of_lists_answer_422() -> None:
    with pytest.raises(PatchError) as caught:
        strategic_merge_patch(
            pod(metadata={"finalizers": []}), {"metadata": {"finalizers": [["x"]]}}, "Pod"
        )
    assert (str(caught.value), caught.value.code) == ("lists of lists are not supported", 422)


@pytest.mark.parametrize("patch", [[], "x", None, 5])
def test_strategic_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(PatchError) as caught:
        strategic_merge_patch(pod(), patch, "Pod")
    assert (str(caught.value), caught.value.code) == ("invalid JSON document", 400)


def test_unknown_kind_replaces_lists_but_honours_directives() -> None:
    original = {"kind": "Widget", "spec": {"items": [{"name": "a"}], "m": {"a": 1, "b": 2}}}
    patch = {"spec": {"items": [{"name": "b"}], "m": {"a": None, "$retainKeys": ["c"], "c": 3}}}
    assert strategic_merge_patch(original, patch, "Widget") == {
        "kind": "Widget",
        "spec": {"items": [{"name": "b"}], "m": {"c": 3}},
    }


def test_containers_of_a_pod_without_metadata_table_would_be_replaced() -> None:
    # The same patch means different things per kind: the table is what makes Pods merge.
    original = {"spec": {"containers": [ctr("a")]}}
    patch = {"spec": {"containers": [ctr("b")]}}
    assert strategic_merge_patch(original, patch, "Pod")["spec"]["containers"] == [
        ctr("b"),
        ctr("a"),
    ]
    assert strategic_merge_patch(original, patch, "Widget")["spec"]["containers"] == [ctr("b")]


def test_empty_original_accepts_a_whole_object() -> None:
    patch = {"metadata": {"name": "a", "finalizers": ["x"]}, "spec": {"containers": [ctr("c")]}}
    assert strategic_merge_patch({}, patch, "Pod") == patch


# --------------------------------------------------------------------------------------------
# The patch metadata table
# --------------------------------------------------------------------------------------------


def merge(key: str = "", *, retain_keys: bool = False, schema: str = "") -> FieldMeta:
    return FieldMeta(strategy="merge", merge_key=key, retain_keys=retain_keys, schema=schema)


@pytest.mark.parametrize(
    ("kind", "path", "meta"),
    [
        ("Pod", "metadata.finalizers", merge()),
        ("Pod", "metadata.ownerReferences", merge("uid")),
        ("Pod", "metadata.managedFields", FieldMeta()),
        ("Pod", "spec.containers", merge("name", schema="Container")),
        ("Pod", "spec.initContainers", merge("name", schema="Container")),
        ("Pod", "spec.ephemeralContainers", merge("name", schema="Container")),
        ("Pod", "spec.volumes", merge("name", retain_keys=True)),
        ("Pod", "spec.imagePullSecrets", merge("name")),
        ("Pod", "spec.hostAliases", merge("ip")),
        ("Pod", "spec.topologySpreadConstraints", merge("topologyKey")),
        ("Pod", "spec.schedulingGates", merge("name")),
        ("Pod", "spec.resourceClaims", merge("name", retain_keys=True)),
        ("Pod", "spec.tolerations", FieldMeta()),
        ("Pod", "spec.readinessGates", FieldMeta()),
        ("Pod", "spec.containers.ports", merge("containerPort")),
        ("Pod", "spec.containers.env", merge("name")),
        ("Pod", "spec.containers.volumeMounts", merge("mountPath")),
        ("Pod", "spec.containers.volumeDevices", merge("devicePath")),
        ("Pod", "spec.containers.envFrom", FieldMeta()),
        ("Pod", "spec.containers.resizePolicy", FieldMeta()),
        ("Pod", "spec.ephemeralContainers.env", merge("name")),
        ("Pod", "spec.initContainers.ports", merge("containerPort")),
        ("Pod", "status.conditions", merge("type")),
        ("Pod", "status.podIPs", merge("ip")),
        ("Pod", "status.hostIPs", merge("ip")),
        ("Pod", "status.resourceClaimStatuses", merge("name", retain_keys=True)),
        ("Pod", "status.containerStatuses", FieldMeta()),
        ("Pod", "status.initContainerStatuses", FieldMeta()),
        ("Service", "metadata.finalizers", merge()),
        ("Service", "spec.ports", merge("port")),
        ("Service", "spec.externalIPs", FieldMeta()),
        ("Service", "spec.ipFamilies", FieldMeta()),
        ("Service", "status.conditions", merge("type")),
        ("Node", "spec.podCIDRs", merge()),
        ("Node", "spec.taints", FieldMeta()),
        ("Node", "status.addresses", merge("type")),
        ("Node", "status.conditions", merge("type")),
        ("Node", "status.images", FieldMeta()),
        ("Node", "status.volumesAttached", FieldMeta()),
        ("Namespace", "spec.finalizers", FieldMeta()),
        ("Namespace", "status.conditions", merge("type")),
        ("Namespace", "metadata.ownerReferences", merge("uid")),
        ("EndpointSlice", "endpoints", FieldMeta()),
        ("EndpointSlice", "ports", FieldMeta()),
        ("EndpointSlice", "metadata.ownerReferences", merge("uid")),
        ("NetworkPolicy", "spec.ingress", FieldMeta()),
        ("NetworkPolicy", "spec.egress", FieldMeta()),
        ("NetworkPolicy", "spec.policyTypes", FieldMeta()),
        ("NetworkPolicy", "metadata.finalizers", merge()),
        ("Event", "metadata.ownerReferences", merge("uid")),
        ("Widget", "spec.containers", FieldMeta()),
    ],
)
def test_patch_metadata(kind: str, path: str, meta: FieldMeta) -> None:
    assert patch_meta(kind, path.split(".")) == meta


# --------------------------------------------------------------------------------------------
# The same cases against the real implementation (kubectl patch --local runs strategicpatch)
# --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]


def _kubectl() -> str | None:
    local = REPO / ".weir" / "bin" / "kubectl"
    return str(local) if local.is_file() else shutil.which("kubectl")


def _as_decoded(value: Any) -> Any:
    """What decoding into the typed object and encoding again leaves of a patched object."""
    if isinstance(value, dict):
        kept = {
            k: _as_decoded(v) for k, v in value.items() if v is not None and not k.startswith("$")
        }
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_as_decoded(item) for item in value]
    return value


def _run_kubectl(kubectl: str, case: Case, workdir: Path) -> tuple[bool, Any]:
    source = workdir / f"{abs(hash(case.name))}.json"
    source.write_text(json.dumps(case.original))
    done = subprocess.run(
        [
            kubectl,
            "patch",
            "--local",
            "-f",
            str(source),
            "-o",
            "json",
            "-p",
            json.dumps(case.patch),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "KUBECONFIG": os.devnull, "HOME": str(workdir)},
        check=False,
    )
    if done.returncode:
        return False, done.stderr.strip().removeprefix("error: ")
    result = json.loads(done.stdout)
    result.get("metadata", {}).pop("creationTimestamp", None)
    return True, _as_decoded(result)


@pytest.fixture(scope="module")
def kubectl_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, Any]]:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    workdir = tmp_path_factory.mktemp("kubectl")
    cases = [case for case in SMP_CASES if case.oracle]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda case: _run_kubectl(kubectl, case, workdir), cases)
        return {case.name: result for case, result in zip(cases, results, strict=True)}


@pytest.mark.integration
@pytest.mark.parametrize("case", [c for c in SMP_CASES if c.oracle], ids=_case_id)
def test_strategic_cases_agree_with_kubectl(
    case: Case, kubectl_results: dict[str, tuple[bool, Any]]
) -> None:
    ok, theirs = kubectl_results[case.name]
    try:
        ours = _as_decoded(strategic_merge_patch(case.original, case.patch, case.original["kind"]))
    except PatchError as err:
        assert not ok, f"kubectl applied it: {theirs}"
        assert str(err).strip() == theirs
        return
    assert ok, f"kubectl failed: {theirs}"
    assert ours == theirs


# --------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386 appendix A, with kube's engine's differences)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        # kube's engine prunes nulls from values it sets, inside lists too...
        ({}, {"a": [{"b": None, "c": 1}, None]}, {"a": [{"c": 1}, None]}),
        ({"a": "x"}, {"a": [{"b": None}]}, {"a": [{}]}),
        # ...but not from a value that replaces an object.
        ({"a": {"x": 1}}, {"a": [{"b": None}]}, {"a": [{"b": None}]}),
        # kubectl label / annotate send merge patches like these.
        (
            {"metadata": {"name": "p", "labels": {"app": "web", "tier": "a"}}},
            {"metadata": {"labels": {"tier": None, "env": "prod"}}},
            {"metadata": {"name": "p", "labels": {"app": "web", "env": "prod"}}},
        ),
        (
            {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
            {"spec": {"containers": [{"name": "c"}]}},
            {"spec": {"containers": [{"name": "c"}]}},
        ),
        (
            {"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 1}},
            {"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 2}},
            {"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 2}},
        ),
    ],
)
def test_json_merge_patch(original: Any, patch: Any, expected: Any) -> None:
    frozen_original, frozen_patch = copy.deepcopy(original), copy.deepcopy(patch)
    assert json_merge_patch(original, patch) == expected
    assert (original, patch) == (frozen_original, frozen_patch)


@pytest.mark.parametrize("patch", [None, "bar", 5, True])
def test_json_merge_patch_must_be_an_object_or_array(patch: Any) -> None:
    # RFC 7386 would return the value; kube answers 400.
    with pytest.raises(PatchError) as caught:
        json_merge_patch({"a": "foo"}, patch)
    assert (str(caught.value), caught.value.code) == ("Invalid JSON Patch", 400)


def test_json_merge_patch_result_is_independent() -> None:
    patch = {"a": {"b": [1]}}
    result = json_merge_patch({}, patch)
    result["a"]["b"].append(2)
    assert patch == {"a": {"b": [1]}}


# --------------------------------------------------------------------------------------------
# JSON patch (RFC 6902 appendix A, with kube's engine's differences)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "operations", "expected"),
    [
        # A.1 - A.16
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux"}],
            {"baz": "qux", "foo": "bar"},
        ),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        (
            {"foo": ["bar", "qux", "baz"]},
            [{"op": "remove", "path": "/foo/1"}],
            {"foo": ["bar", "baz"]},
        ),
        (
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
        ),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"baz": "qux", "foo": ["a", 2, "c"]},
            [
                {"op": "test", "path": "/baz", "value": "qux"},
                {"op": "test", "path": "/foo/1", "value": 2},
            ],
            {"baz": "qux", "foo": ["a", 2, "c"]},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
            {"foo": "bar", "baz": "qux"},
        ),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        # Pointer escapes.
        ({"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2}),
        ({"m~n": 1}, [{"op": "remove", "path": "/m~0n"}], {}),
        # Numbers compare as JSON numbers; the whole document can be replaced.
        ({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
        (
            {"a": {"b": [1, {"c": True}]}},
            [{"op": "test", "path": "/a", "value": {"b": [1, {"c": True}]}}],
            {"a": {"b": [1, {"c": True}]}},
        ),
        ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
        ({"a": 1}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": 1, "b": 1}),
        ({"a": [1, 2]}, [{"op": "move", "from": "/a/0", "path": "/a/-"}], {"a": [2, 1]}),
        ({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
        ({"a": 1}, None, {"a": 1}),
        ({"a": 1}, [], {"a": 1}),
        # kube's engine: replace adds a missing key, negative indices count from the end,
        # a missing value is null, test of an absent path against null passes.
        (
            {"metadata": {}},
            [{"op": "replace", "path": "/metadata/annotations", "value": {"a": "b"}}],
            {"metadata": {"annotations": {"a": "b"}}},
        ),
        ({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}], {"a": [1, 2]}),
        ({"a": [1, 2, 3]}, [{"op": "replace", "path": "/a/-3", "value": 0}], {"a": [0, 2, 3]}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 9}], {"a": [1, 2, 9]}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/-3", "value": 9}], {"a": [9, 1, 2]}),
        ({"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], {"a": [1]}),
        ({"a": 1}, [{"op": "add", "path": "/b"}], {"a": 1, "b": None}),
        ({"a": 1}, [{"op": "test", "path": "/b", "value": None}], {"a": 1}),
        # kubectl patch --type json, as people write it.
        (
            {
                "spec": {
                    "containers": [
                        {"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 443}]}
                    ]
                }
            },
            [{"op": "remove", "path": "/spec/containers/0/ports/0"}],
            {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 443}]}]}},
        ),
        (
            {"spec": {"containers": [{"name": "c", "image": "a"}]}},
            [
                {"op": "test", "path": "/spec/containers/0/name", "value": "c"},
                {"op": "replace", "path": "/spec/containers/0/image", "value": "b"},
                {"op": "add", "path": "/spec/containers/0/args", "value": ["--v=2"]},
                {"op": "add", "path": "/spec/containers/0/args/-", "value": "--x"},
            ],
            {"spec": {"containers": [{"name": "c", "image": "b", "args": ["--v=2", "--x"]}]}},
        ),
        (
            {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}},
            [{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}],
            {"metadata": {"labels": {}}},
        ),
    ],
)
def test_json_patch(original: Any, operations: Any, expected: Any) -> None:
    frozen_original, frozen_operations = copy.deepcopy(original), copy.deepcopy(operations)
    assert json_patch(original, operations) == expected
    assert (original, operations) == (frozen_original, frozen_operations)


DOC = {"metadata": {"labels": {"c": "2"}}, "spec": {"args": ["x", "y"]}}


@pytest.mark.parametrize(
    ("operations", "message", "code"),
    [
        ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400),
        ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch", 400),
        ([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation", 400),
        ([[]], "json: cannot unmarshal array into Go value of type jsonpatch.Operation", 400),
        ([{"op": "frob", "path": "/x"}], "Unexpected kind: frob", 422),
        ([{"path": "/x"}], "Unexpected kind: unknown", 422),
        ([None], "Unexpected kind: unknown", 422),
        ([{"op": "add", "value": 1}], "add operation failed to decode path: missing value", 422),
        (
            [{"op": "move", "path": "/a"}],
            "move operation failed to decode from: missing value",
            422,
        ),
        (
            [{"op": "add", "path": "/nope/x", "value": 1}],
            'add operation does not apply: doc is missing path: "/nope/x": missing value',
            422,
        ),
        (
            [{"op": "add", "path": "/spec/args/5", "value": "z"}],
            "error in add for path: '/spec/args/5': Unable to access invalid index: 5: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "add", "path": "/spec/args/x", "value": "z"}],
            "error in add for path: '/spec/args/x': value was not a proper array index: 'x': "
            'strconv.Atoi: parsing "x": invalid syntax',
            422,
        ),
        (
            [{"op": "add", "path": "/spec/args/-4", "value": "z"}],
            "error in add for path: '/spec/args/-4': Unable to access invalid index: -4: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "remove", "path": "/metadata/labels/zz"}],
            "error in remove for path: '/metadata/labels/zz': Unable to remove nonexistent key: "
            "zz: missing value",
            422,
        ),
        (
            [{"op": "remove", "path": "/spec/args/7"}],
            "error in remove for path: '/spec/args/7': Unable to access invalid index: 7: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "replace", "path": "/spec/args/5", "value": "q"}],
            "replace operation does not apply: doc is missing key: /spec/args/5: missing value",
            422,
        ),
        (
            [{"op": "replace", "path": "/nope/x", "value": 1}],
            "replace operation does not apply: doc is missing path: /nope/x: missing value",
            422,
        ),
        (
            [{"op": "test", "path": "/metadata/labels/c", "value": "3"}],
            "testing value /metadata/labels/c failed: test failed",
            422,
        ),
        (
            [{"op": "test", "path": "/metadata/labels/zz", "value": "1"}],
            "testing value /metadata/labels/zz failed: test failed",
            422,
        ),
        (
            [{"op": "test", "path": "/metadata/labels/c"}],
            "testing value /metadata/labels/c failed: test failed",
            422,
        ),
        (
            [{"op": "test", "path": "/spec/args/9", "value": "1"}],
            "error in test for path: '/spec/args/9': Unable to access invalid index: 9: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "test", "path": "/nope/a", "value": "1"}],
            "test operation does not apply: is missing path: /nope/a: missing value",
            422,
        ),
        (
            [{"op": "move", "from": "/metadata/labels/zz", "path": "/metadata/labels/q"}],
            "error in move for path: 'zz': Unable to remove nonexistent key: zz: missing value",
            422,
        ),
        (
            [{"op": "move", "from": "/nope/zz", "path": "/metadata/labels/q"}],
            "move operation does not apply: doc is missing from path: /nope/zz: missing value",
            422,
        ),
        (
            [{"op": "move", "from": "/metadata/labels", "path": "/metadata/labels/q"}],
            "move operation does not apply: doc is missing destination path: "
            "/metadata/labels/q: missing value",
            422,
        ),
        (
            [{"op": "copy", "from": "/spec/args/5", "path": "/spec/x"}],
            "error in copy for from: '/spec/args/5': Unable to access invalid index: 5: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "copy", "from": "/spec/args/0", "path": "/spec/args/9"}],
            "error while adding value during copy: Unable to access invalid index: 9: "
            "invalid index referenced",
            422,
        ),
        (
            [{"op": "copy", "from": "/spec/nope", "path": "/spec/x"}],
            "copy operation does not apply: doc is missing from path: /spec/nope: missing value",
            422,
        ),
        (
            [{"op": "remove", "path": ""}],
            'remove operation does not apply: doc is missing path: "": missing value',
            422,
        ),
        (
            [{"op": "add", "path": "spec", "value": 1}],
            'add operation does not apply: doc is missing path: "spec"',
            422,
        ),
        # Operations apply in order and the first failure wins.
        (
            [
                {"op": "add", "path": "/metadata/labels/d", "value": "4"},
                {"op": "test", "path": "/metadata/labels/d", "value": "5"},
            ],
            "testing value /metadata/labels/d failed: test failed",
            422,
        ),
    ],
)
def test_json_patch_errors(operations: Any, message: str, code: int) -> None:
    frozen = copy.deepcopy(DOC)
    with pytest.raises(PatchError) as caught:
        json_patch(DOC, operations)
    assert (str(caught.value), caught.value.code) == (message, code)
    assert frozen == DOC


def test_json_patch_has_kubes_operation_limit() -> None:
    assert json_patch({"a": 0}, [{"op": "replace", "path": "/a", "value": 1}] * 10000) == {"a": 1}
    with pytest.raises(PatchError) as caught:
        json_patch({"a": 0}, [{"op": "test", "path": "/a", "value": 0}] * 10001)
    assert caught.value.code == 413
    assert str(caught.value) == (
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    )


def test_json_patch_values_are_copied_in() -> None:
    value = {"b": [1]}
    operations = [
        {"op": "add", "path": "/a", "value": value},
        {"op": "add", "path": "/a/b/-", "value": 2},
    ]
    assert json_patch({}, operations) == {"a": {"b": [1, 2]}}
    assert value == {"b": [1]}


def test_json_patch_copy_is_deep() -> None:
    result = json_patch({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}])
    result["c"]["b"].append(2)
    assert result == {"a": {"b": [1]}, "c": {"b": [1, 2]}}
