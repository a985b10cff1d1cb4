"""The NetworkPolicy conformance judge: runs a case file against a live local cluster.

A case (tests/conformance/netpol/README.md) is a list of steps — apply or delete a policy,
relabel a pod or namespace, check — and expectation tables over every ordered pair of the
model's 9 pods. The judge resets the model, executes the steps, waits until the dataplane
has converged (`weir status --wait-converged`: every API change made so far is in every
node's datapath), probes every pair from inside the pods, and reports each pair whose
reachability differs from the table. It never sleeps to "let things settle": convergence is a
barrier, so a mismatch is a real one.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import model
from tests.support.dev import DevCluster

CASES = Path(__file__).resolve().parent / "netpol" / "cases"
TEMPLATE = re.compile(r"\$\{(ip|net):([^}:]+)(?::(\d+))?\}")
PROBE_TIMEOUT = "1"  # seconds, as upstream


@dataclass
class Case:
    name: str
    path: Path
    requires: list[str]
    steps: list[dict[str, Any]]
    expect: list[dict[str, Any]]
    source: str = ""


def load_cases(directory: Path = CASES) -> list[Case]:
    cases = []
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        cases.append(
            Case(
                name=raw["name"],
                path=path,
                requires=list(raw.get("requires") or []),
                steps=list(raw.get("steps") or []),
                expect=list(raw.get("expect") or []),
                source=str(raw.get("source") or ""),
            )
        )
    return cases


def substitute(manifest: Any, ips: dict[str, str]) -> Any:
    """Replace ${ip:NS/POD} and ${net:NS/POD:LEN} templates (ipBlock values only)."""
    if isinstance(manifest, dict):
        return {k: substitute(v, ips) for k, v in manifest.items()}
    if isinstance(manifest, list):
        return [substitute(v, ips) for v in manifest]
    if isinstance(manifest, str):

        def one(m: re.Match[str]) -> str:
            kind, pod, length = m.group(1), m.group(2), m.group(3)
            ip = ips[pod]
            if kind == "ip":
                return ip
            net = ipaddress.IPv4Network(f"{ip}/{length}", strict=False)
            return str(net.network_address)

        return TEMPLATE.sub(one, manifest)
    return manifest


def _matches(pattern: str, pod: str) -> bool:
    return pattern == "*" or fnmatch.fnmatchcase(pod, pattern)


def expand(table: dict[str, Any], pods: list[str]) -> dict[tuple[str, str], bool]:
    """Every ordered pair of distinct pods: the default, then each exception in order."""
    out = {(a, b): bool(table["default"]) for a in pods for b in pods if a != b}
    for exc in table.get("exceptions") or []:
        for pair in out:
            if _matches(str(exc["from"]), pair[0]) and _matches(str(exc["to"]), pair[1]):
                out[pair] = bool(exc["expected"])
    return out


@dataclass
class Mismatch:
    checkpoint: str
    source: str
    target: str
    port: int
    protocol: str
    expected: bool

    def __str__(self) -> str:
        want = "reachable" if self.expected else "blocked"
        return (
            f"[{self.checkpoint}] {self.source} -> {self.target} {self.port}/"
            f"{self.protocol}: expected {want}"
        )


@dataclass
class Outcome:
    case: str
    skipped: str = ""
    mismatches: list[Mismatch] = field(default_factory=list)
    checkpoints: int = 0

    @property
    def passed(self) -> bool:
        return not self.skipped and not self.mismatches


class Judge:
    """Runs cases on a cluster that already runs the model (see `setup`)."""

    def __init__(self, cluster: DevCluster, *, unsupported: frozenset[str] = frozenset({"SCTP"})):
        self.cluster = cluster
        self.unsupported = unsupported
        self.pods = model.pod_refs()
        self.ips: dict[str, str] = {}

    def setup(self) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=model.manifests())
        self.cluster.wait_pods_running(list(model.NAMESPACES), len(self.pods), timeout=120)
        for ref in self.pods:
            ns, name = ref.split("/")
            pod = self.cluster.kubectl_json("get", "pod", name, "-n", ns)
            self.ips[ref] = pod["status"]["podIP"]

    def reset(self) -> None:
        """The initial state: no policies, the model's labels only."""
        for ns in model.NAMESPACES:
            self.cluster.kubectl("delete", "networkpolicies", "--all", "-n", ns)
            self.cluster.kubectl("label", "namespace", ns, f"ns={ns}", "--overwrite")
            extra = [
                k
                for k in self.cluster.kubectl_json("get", "namespace", ns)["metadata"].get(
                    "labels", {}
                )
                if k not in ("ns", "kubernetes.io/metadata.name")
            ]
            if extra:
                self.cluster.kubectl("label", "namespace", ns, *[f"{k}-" for k in extra])
            for pod in model.PODS:
                labels = self.cluster.kubectl_json("get", "pod", pod, "-n", ns)["metadata"].get(
                    "labels", {}
                )
                drop = [f"{k}-" for k in labels if k != "pod"]
                self.cluster.kubectl(
                    "label", "pod", pod, "-n", ns, f"pod={pod}", "--overwrite", *drop
                )

    def converge(self) -> None:
        self.cluster.weir("status", "--wait-converged", "--timeout", "60", check=True)

    def _relabel(self, kind: str, ns: str, name: str, body: dict[str, Any]) -> None:
        args = [f"{k}={v}" for k, v in (body.get("set") or {}).items()]
        args += [f"{k}-" for k in body.get("remove") or []]
        if not args:
            return
        where = ["-n", ns] if kind == "pod" else []
        self.cluster.kubectl("label", kind, name, *where, "--overwrite", *args)

    def step(self, step: dict[str, Any]) -> None:
        ((kind, body),) = step.items()
        if kind == "apply_policy":
            manifest = substitute(body, self.ips)
            self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        elif kind == "delete_policy":
            self.cluster.kubectl("delete", "networkpolicy", body["name"], "-n", body["namespace"])
        elif kind == "label_pod":
            ns, name = str(body["pod"]).split("/")
            self._relabel("pod", ns, name, body)
        elif kind == "label_namespace":
            self._relabel("namespace", "", str(body["namespace"]), body)
        else:
            raise ValueError(f"unknown step {kind!r}")

    def probe(self, port: int, protocol: str) -> dict[tuple[str, str], bool]:
        out = self.cluster.weir(
            "dev",
            "probe-matrix",
            "--pods",
            ",".join(self.pods),
            "--port",
            str(port),
            "--protocol",
            protocol.lower(),
            "--timeout",
            PROBE_TIMEOUT,
            check=True,
        )
        matrix: dict[str, dict[str, bool]] = json.loads(out.stdout)["from"]
        return {(a, b): ok for a, row in matrix.items() for b, ok in row.items()}

    def evaluate(self, checkpoint: str, tables: list[dict[str, Any]]) -> list[Mismatch]:
        self.converge()
        found = []
        for table in tables:
            want = expand(table, self.pods)
            for probe in table["probes"]:
                port, protocol = int(probe["port"]), str(probe.get("protocol", "TCP"))
                have = self.probe(port, protocol)
                found += [
                    Mismatch(checkpoint, a, b, port, protocol, expected)
                    for (a, b), expected in want.items()
                    if have[(a, b)] != expected
                ]
        return found

    def run(self, case: Case) -> Outcome:
        missing = sorted(set(case.requires) & self.unsupported)
        if missing:
            return Outcome(case.name, skipped=f"needs {', '.join(missing)} (not in this kernel)")
        self.reset()
        outcome = Outcome(case.name)
        for i, step in enumerate(case.steps):
            if "check" in step:
                outcome.mismatches += self.evaluate(f"check {i + 1}", list(step["check"]))
                outcome.checkpoints += 1
            else:
                self.step(step)
        outcome.mismatches += self.evaluate("expect", case.expect)
        outcome.checkpoints += 1
        return outcome
