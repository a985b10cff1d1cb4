"""The real kubectl 1.35 against the local API server: reads, writes, watches and errors.

Each test checks what kubectl printed (or the server state it left), so a broken server
behaviour fails it: wrong table columns, a watch that does not deliver, a patch that does not
land, a graceful delete that is immediate, a validation error without the field path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kube

pytestmark = pytest.mark.integration

CASES = Path(__file__).resolve().parents[1] / "conformance" / "netpol" / "cases"


def pod_yaml(ns: str, name: str, labels: str = "app: web", node: str = "") -> str:
    node_line = f"  nodeName: {node}\n" if node else ""
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        f"  labels: {{{labels}}}\nspec:\n{node_line}  containers:\n  - name: c\n"
        "    image: weir/agnhost\n    ports:\n    - {name: http, containerPort: 8080}\n"
    )


def service_yaml(ns: str, name: str = "web", port: int = 80) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        f"spec:\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: {port}, "
        "targetPort: http}\n"
    )


def api(
    kube: Kube, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        kube.url + path, data=data, method=method, headers={"Content-Type": ctype}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def set_pod_running(kube: Kube, ns: str, name: str, ip: str) -> None:
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "c", "ready": True, "restartCount": 0, "image": "weir/agnhost",
                 "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
            ],
        }
    }  # fmt: skip
    api(
        kube,
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/{name}/status",
        status,
        "application/merge-patch+json",
    )


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_get_in_every_output_format(kube: Kube, namespace: str) -> None:
    ns = namespace
    kube("apply", "-f", "-", input=pod_yaml(ns, "web-0") + "---\n" + service_yaml(ns))
    set_pod_running(kube, ns, "web-0", "10.244.1.7")
    table = rows(kube("get", "pods", "-n", ns))
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1][:4] == ["web-0", "1/1", "Running", "0"]
    wide = rows(kube("get", "pods", "-n", ns, "-o", "wide"))
    assert wide[0][5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert wide[1][5] == "10.244.1.7"
    as_yaml = yaml.safe_load(kube("get", "pod", "web-0", "-n", ns, "-o", "yaml"))
    assert as_yaml["kind"] == "Pod" and as_yaml["status"]["podIP"] == "10.244.1.7"
    as_json = json.loads(kube("get", "svc", "web", "-n", ns, "-o", "json"))
    cluster_ip = as_json["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.")
    assert kube("get", "pods", "-n", ns, "-o", "name").split() == ["pod/web-0"]
    labelled = rows(kube("get", "pods", "-n", ns, "--show-labels"))
    assert labelled[0][-1] == "LABELS" and labelled[1][-1] == "app=web"
    assert rows(kube("get", "pods", "-n", ns, "-l", "app=db", "-o", "name")) == []
    by_field = kube(
        "get", "pods", "-A", "--field-selector", "status.podIP=10.244.1.7", "-o", "name"
    )
    assert by_field.split() == ["pod/web-0"]
    everywhere = rows(kube("get", "pods", "-A"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"] and [ns, "web-0"] in [
        r[:2] for r in everywhere
    ]
    svc = rows(kube("get", "svc", "-n", ns, "-o", "wide"))
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert svc[1][:5] == ["web", "ClusterIP", cluster_ip, "<none>", "80/TCP"]
    assert svc[1][6] == "app=web"
    both = kube("get", "po,svc", "-n", ns)
    assert "pod/web-0" in both and "service/web" in both
    everything = kube("get", "all", "-n", ns)
    assert "pod/web-0" in everything and "service/web" in everything
    slices = rows(kube("get", "endpointslices", "-n", ns))
    assert slices[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert slices[1][0].startswith("web-") and slices[1][1:4] == ["IPv4", "8080", "10.244.1.7"]
    namespaces = rows(kube("get", "ns"))
    assert namespaces[1][:2] == ["default", "Active"] or ["default", "Active"] in [
        r[:2] for r in namespaces
    ]


def test_api_resources_lists_the_served_kinds(kube: Kube) -> None:
    out = rows(kube("api-resources"))
    assert out[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {r[0]: r for r in out[1:]}
    assert by_name["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert by_name["networkpolicies"] == [
        "networkpolicies", "netpol", "networking.k8s.io/v1", "true", "NetworkPolicy",
    ]  # fmt: skip
    assert by_name["endpointslices"][1:] == ["discovery.k8s.io/v1", "true", "EndpointSlice"]
    assert by_name["nodes"][1:3] == ["no", "v1"] and by_name["namespaces"][1] == "ns"


def test_get_watch_sees_a_change(kube: Kube, namespace: str) -> None:
    kube("apply", "-f", "-", input=pod_yaml(namespace, "w"))
    proc = subprocess.Popen(
        kube.argv("get", "pods", "-n", namespace, "-w", "--request-timeout=20s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline().split()
        assert header[:3] == ["NAME", "READY", "STATUS"]
        assert proc.stdout.readline().split()[:3] == ["w", "0/1", "Pending"]
        time.sleep(0.3)
        set_pod_running(kube, namespace, "w", "10.244.9.9")
        changed = proc.stdout.readline().split()
        assert changed[:3] == ["w", "1/1", "Running"]
    finally:
        proc.kill()
        proc.wait()


def test_create_apply_twice_and_replace(kube: Kube, namespace: str, tmp_path: Path) -> None:
    ns = namespace
    f = tmp_path / "svc.yaml"
    f.write_text(service_yaml(ns))
    assert "service/web created" in kube("create", "-f", str(f))
    assert "AlreadyExists" in kube.run("create", "-f", str(f)).stderr
    f.write_text(service_yaml(ns, name="applied"))
    assert "service/applied created" in kube("apply", "-f", str(f))
    before = json.loads(kube("get", "svc", "applied", "-n", ns, "-o", "json"))
    f.write_text(service_yaml(ns, name="applied", port=8080))
    assert "service/applied configured" in kube("apply", "-f", str(f))
    after = json.loads(kube("get", "svc", "applied", "-n", ns, "-o", "json"))
    assert [p["port"] for p in after["spec"]["ports"]] == [8080]
    assert after["spec"]["clusterIP"] == before["spec"]["clusterIP"]  # kept by the patch
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["metadata"]["generation"] == 2
    assert "service/applied unchanged" in kube("apply", "-f", str(f))
    f.write_text(service_yaml(ns, name="applied", port=9090).replace("app: web", "app: other"))
    assert "service/applied replaced" in kube("replace", "-f", str(f))
    replaced = json.loads(kube("get", "svc", "applied", "-n", ns, "-o", "json"))
    assert replaced["spec"]["selector"] == {"app": "other"}
    assert replaced["spec"]["clusterIP"] == before["spec"]["clusterIP"]
    assert "last-applied-configuration" not in json.dumps(
        replaced["metadata"].get("annotations", {})
    )


def test_label_annotate_and_three_kinds_of_patch(kube: Kube, namespace: str) -> None:
    ns = namespace
    kube("apply", "-f", "-", input=service_yaml(ns))
    assert "labeled" in kube("label", "svc", "web", "-n", ns, "tier=front")
    assert "annotated" in kube("annotate", "svc", "web", "-n", ns, "note=hello")
    kube(
        "patch",
        "svc",
        "web",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        '{"metadata":{"labels":{"m":"1"}}}',
    )
    kube(
        "patch", "svc", "web", "-n", ns, "-p", '{"spec":{"ports":[{"port":80,"targetPort":8081}]}}'
    )
    kube(
        "patch",
        "svc",
        "web",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/selector","value":{"app":"db"}}]',
    )
    got = json.loads(kube("get", "svc", "web", "-n", ns, "-o", "json"))
    assert got["metadata"]["labels"] == {"tier": "front", "m": "1"}
    assert got["metadata"]["annotations"]["note"] == "hello"
    # Strategic merge keyed by port: that port changed in place, its name and protocol kept.
    assert got["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081}
    ]
    assert got["spec"]["selector"] == {"app": "db"}
    shown = rows(kube("get", "svc", "-n", ns, "-l", "tier=front", "--show-labels"))
    assert shown[1][0] == "web" and "m=1,tier=front" in shown[1][-1]


def test_dry_run_server_stores_nothing(kube: Kube, namespace: str) -> None:
    out = kube("apply", "-f", "-", "--dry-run=server", input=pod_yaml(namespace, "ghost"))
    assert "pod/ghost created (server dry run)" in out
    missing = kube.run("get", "pod", "ghost", "-n", namespace)
    assert missing.returncode == 1 and 'pods "ghost" not found' in missing.stderr
    kube("apply", "-f", "-", input=pod_yaml(namespace, "real"))
    out = kube("delete", "pod", "real", "-n", namespace, "--dry-run=server")
    assert "(server dry run)" in out
    assert kube("get", "pods", "-n", namespace, "-o", "name").split() == ["pod/real"]


def test_graceful_pod_delete_waits_for_the_grace_period(kube: Kube, namespace: str) -> None:
    ns = namespace
    kube("apply", "-f", "-", input=pod_yaml(ns, "slow", node="node-1"))
    start = time.monotonic()
    out = kube("delete", "pod", "slow", "-n", ns, "--grace-period=2", "--wait", timeout=30)
    took = time.monotonic() - start
    assert 'pod "slow" deleted' in out
    assert 1.8 <= took <= 10, took  # graceful: not immediate, removed once the grace ran out
    assert kube.run("get", "pod", "slow", "-n", ns).returncode == 1
    # An unscheduled pod goes at once.
    kube("apply", "-f", "-", input=pod_yaml(ns, "quick"))
    start = time.monotonic()
    kube("delete", "pod", "quick", "-n", ns, "--grace-period=30", "--wait")
    assert time.monotonic() - start < 1.5


def test_terminating_pod_shows_and_a_forced_delete_ends_it(kube: Kube, namespace: str) -> None:
    ns = namespace
    kube("apply", "-f", "-", input=pod_yaml(ns, "p", node="node-1"))
    kube("delete", "pod", "p", "-n", ns, "--wait=false")
    got = json.loads(kube("get", "pod", "p", "-n", ns, "-o", "json"))
    assert got["metadata"]["deletionGracePeriodSeconds"] == 30
    assert rows(kube("get", "pod", "p", "-n", ns))[1][2] == "Terminating"
    kube("delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
    assert kube.run("get", "pod", "p", "-n", ns).returncode == 1


def test_wait_for_a_condition(kube: Kube, namespace: str) -> None:
    kube("apply", "-f", "-", input=pod_yaml(namespace, "r"))
    proc = subprocess.Popen(
        kube.argv("wait", "--for=condition=Ready", "pod/r", "-n", namespace, "--timeout=20s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    assert proc.poll() is None  # still waiting: the pod is not ready
    set_pod_running(kube, namespace, "r", "10.244.3.3")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "pod/r condition met" in out


def test_invalid_network_policy_is_rejected_with_the_field_path(kube: Kube, namespace: str) -> None:
    bad = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: bad, namespace: {namespace}}}\n"
        "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n"
        "  ingress:\n  - ports:\n    - {port: 70000, protocol: TCP}\n"
    )
    result = kube.run("apply", "-f", "-", input=bad)
    assert result.returncode == 1
    assert 'The NetworkPolicy "bad" is invalid' in result.stderr
    assert "spec.ingress[0].ports[0].port" in result.stderr
    unknown = bad.replace("ports:\n    - {port: 70000, protocol: TCP}", "bogus: 1")
    result = kube.run("apply", "-f", "-", input=unknown)
    assert result.returncode == 1
    assert 'strict decoding error: unknown field "spec.ingress[0].bogus"' in result.stderr


def conformance_policies() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for case in sorted(CASES.glob("*.yaml")):
        doc = yaml.safe_load(case.read_text())
        for step in doc.get("steps") or []:
            if "apply_policy" in step:
                out.append((case.stem, step["apply_policy"]))
    return out


def test_conformance_policies_apply_and_list(kube: Kube, namespace: str) -> None:
    policies = conformance_policies()
    assert policies, f"no cases under {CASES}"
    names = set()
    for _, case_policy in policies:
        # Cases template pod IPs and networks (`${ip:ns/pod}`, `${net:ns/pod:len}`); any
        # address does for the API.
        text = re.sub(r"\$\{(ip|net):[^}]*\}", "10.244.0.10", json.dumps(case_policy))
        policy = json.loads(text)
        policy["metadata"]["namespace"] = namespace
        kube("apply", "-f", "-", input=json.dumps(policy))  # YAML 1.1 would read `y` as true
        names.add(policy["metadata"]["name"])
    listed = rows(kube("get", "netpol", "-n", namespace))
    assert listed[0] == ["NAME", "POD-SELECTOR", "AGE"]
    assert {r[0] for r in listed[1:]} == names
    deny = next(r for r in listed[1:] if r[0] == "deny-ingress")
    assert deny[1] == "<none>"


def test_namespace_deletion_removes_its_content(kube: Kube) -> None:
    ns = "doomed"
    kube("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    kube("apply", "-f", "-", input=pod_yaml(ns, "a") + "---\n" + service_yaml(ns))
    labels = json.loads(kube("get", "ns", ns, "-o", "json"))["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": ns}
    kube("delete", "ns", ns, "--timeout=20s")
    assert kube.run("get", "ns", ns).returncode == 1
    assert kube("get", "pods,svc,endpointslices", "-n", ns, "-o", "name").strip() == ""


def test_generators_that_send_protobuf(kube: Kube) -> None:
    assert "namespace/gen created" in kube("create", "namespace", "gen")
    out = kube(
        "create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30080", "-n", "gen"
    )
    assert "service/web created" in out
    kube("create", "service", "clusterip", "hl", "--clusterip=None", "--tcp=5678:8080", "-n", "gen")
    svc = {r[0]: r for r in rows(kube("get", "svc", "-n", "gen"))[1:]}
    assert svc["web"][1] == "NodePort" and svc["web"][4] == "80:30080/TCP"
    assert svc["hl"][1:3] == ["ClusterIP", "None"]


def start_server(state: Path, url_file: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "weir-local-apiserver"
    proc = subprocess.Popen(
        [str(exe), "--state-dir", str(state), "--port", "0", "--url-file", str(url_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not url_file.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no url file"
        time.sleep(0.05)
    return proc


def test_cli_url_file_sigterm_with_open_watch_and_restart(tmp_path: Path) -> None:
    state, url_file = tmp_path / "state", tmp_path / "url"
    proc = start_server(state, url_file)
    try:
        url = url_file.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        body = json.dumps({"metadata": {"name": "kept"}}).encode()
        req = urllib.request.Request(
            f"{url}/api/v1/namespaces", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=5) as r:
            rv = json.loads(r.read())["metadata"]["resourceVersion"]
        watch = urllib.request.urlopen(f"{url}/api/v1/namespaces?watch=true", timeout=10)
        assert json.loads(watch.readline())["type"] == "ADDED"
        start = time.monotonic()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
        watch.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    url_file.unlink()
    proc = start_server(state, url_file)
    try:
        url = url_file.read_text().strip()
        with urllib.request.urlopen(f"{url}/api/v1/namespaces/kept", timeout=5) as r:
            assert json.loads(r.read())["metadata"]["resourceVersion"] == rv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "weir-local-apiserver"
    result = subprocess.run(
        [str(exe), "--state-dir", str(tmp_path), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--allow-remote" in result.stderr
