"""NetworkPolicy conformance on real pods: every case in tests/conformance/netpol/cases.

One two-node local cluster runs the upstream e2e model (9 pods, spread over both nodes); each
case starts from the initial state, applies its steps through kubectl, waits for the dataplane
to converge and compares every ordered pair's reachability with the case's tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.runner import Case, Judge, load_cases
from tests.support.dev import DevCluster

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
