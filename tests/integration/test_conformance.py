"""NetworkPolicy conformance on real pods: every case in tests/conformance/netpol/cases.

One two-node local cluster runs the upstream e2e model (9 pods, spread over both nodes); each
case starts from the initial state, applies its steps through kubectl, waits for the dataplane
to converge and compares every ordered pair's reachability with the case's tables.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.conformance.runner import Case, Judge, load_cases
from tests.support.dev import DevCluster
from tests.support.processes import VENV_BIN

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judge]:
    cluster = DevCluster(tmp_path_factory.mktemp("conformance") / "dev", nodes=2)
    cluster.up()
    try:
        judge = Judge(cluster)
        judge.setup()
        yield judge
    finally:
        cluster.down()


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c.name)
def test_case(judge: Judge, case: Case) -> None:
    outcome = judge.run(case)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert not outcome.mismatches, f"{len(outcome.mismatches)} mismatches:\n" + "\n".join(
        str(m) for m in outcome.mismatches[:40]
    )


def test_every_deny_weir_observe_shows_names_the_policy_and_the_pods(judge: Judge) -> None:
    """Denied probes from pods on both nodes, as `weir observe` shows them: each names the
    policy that denied it, the protected pod and the pod that tried."""
    cluster = judge.cluster
    judge.reset()
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "observe-deny", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deny))
    judge.converge()
    sources = ("y/b", "z/c", "x/b")
    argv = [str(VENV_BIN / "weir"), "observe", "--verdict", "deny", "--pod", "x/a", "-o", "json"]
    observer = subprocess.Popen(
        [*argv, "--count", "6", "--timeout", "60"],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # observe subscribes in the background: probe until it has seen enough (bounded).
        for attempt in range(60):
            if observer.poll() is not None:
                break
            source = sources[attempt % len(sources)]
            probe = cluster.weir("dev", "probe", source, "x/a", "80", "--timeout", "0.5")
            assert probe.returncode != 0, f"{source} reached x/a through a deny-all policy"
        out, err = observer.communicate(timeout=70)
    finally:
        if observer.poll() is None:
            observer.kill()
            observer.wait()
    flows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(flows) == 6, f"weir observe showed {len(flows)} denies: {out}{err}"
    for flow in flows:
        assert flow["verdict"] == "deny"
        assert flow["local_pod"] == "x/a" and flow["remote_pod"] in sources, flow
        assert flow["policy"].startswith("x/observe-deny"), flow
    assert len({f["remote_pod"] for f in flows}) >= 2  # each source named, not just one
    cluster.kubectl("delete", "networkpolicy", "observe-deny", "-n", "x")
