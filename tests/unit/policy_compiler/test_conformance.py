"""Every NetworkPolicy conformance case, judged on the compiler's output by a reference datapath.

Each case file (tests/conformance/netpol/cases) is executed step by step against the core; at
every checkpoint the 9-pod model's full reachability matrix — every ordered pair, every probe —
is decided from the EndpointPolicy values alone (harness.reaches) and must equal the case's
table exactly. The last tests show the judge can fail: a compiler that drops ipBlock on pod
addresses, or one that forgets isolation, is caught.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from weir.models import DirectionPolicy, Protocol
from weir_policy_compiler import compile as compile_module
from weir_policy_compiler import ports
from weir_policy_compiler.compile import Settings

from tests.unit.policy_compiler.harness import run_case

CASES = Path(__file__).resolve().parents[2] / "conformance" / "netpol" / "cases"


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert case["name"] == path.stem, "a case's name is its file name"
    return dict(case)


def test_the_suite_is_all_there() -> None:
    names = [p.stem for p in _cases()]
    assert len(names) >= 16 + 20
    assert "034-egress-to-cidr-host" in names  # the shared cases are part of it


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    mismatches, judged = run_case(_load(path))
    assert judged >= 72
    assert not mismatches, "\n".join(mismatches[:20])


def test_cilium_ipblock_mode_fails_the_pod_ip_cases() -> None:
    """With ipBlock only for addresses outside the cluster, upstream's pod-IP ipBlock tests
    cannot pass: proof that they exercise ipblock_matches_pods."""
    for name in ("034-egress-to-cidr-host", "105-egress-cidr-except-pod-ip"):
        mismatches, _ = run_case(
            _load(CASES / f"{name}.yaml"), Settings(ipblock_matches_pods=False)
        )
        assert mismatches, name


def test_a_compiler_that_forgets_isolation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = compile_module._direction

    def lax(*args: Any) -> Any:
        return DirectionPolicy(enforced=False) if args[0] == "egress" else real(*args)

    monkeypatch.setattr(compile_module, "_direction", lax)
    mismatches, _ = run_case(_load(CASES / "025-deny-egress-by-podselector.yaml"))
    assert len(mismatches) == 8  # x/a -> every other pod


def test_a_compiler_that_treats_sctp_as_tcp_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ports.PROTOCOL_NUMBERS, Protocol.SCTP, 6)
    mismatches, _ = run_case(_load(CASES / "106-sctp-rule-never-opens-tcp.yaml"))
    assert mismatches
