"""The conformance judge's own logic: template substitution and table expansion."""

from __future__ import annotations

from tests.conformance.runner import expand, load_cases, substitute
from tests.support import model

PODS = model.pod_refs()


def test_templates_become_addresses_and_networks() -> None:
    ips = {"y/b": "10.244.2.12", "x/b": "10.244.1.3"}
    got = substitute(
        {"ipBlock": {"cidr": "${ip:y/b}/32", "except": ["${net:x/b:4}/4"]}, "other": ["plain"]}, ips
    )
    assert got == {
        "ipBlock": {"cidr": "10.244.2.12/32", "except": ["0.0.0.0/4"]},
        "other": ["plain"],
    }


def test_exceptions_apply_in_order_and_skip_loopback() -> None:
    table = {
        "default": True,
        "exceptions": [
            {"from": "*", "to": "x/a", "expected": False},
            {"from": "y/*", "to": "x/a", "expected": True},
            {"from": "*/b", "to": "z/c", "expected": False},
        ],
    }
    got = expand(table, PODS)
    assert len(got) == 72 and ("x/a", "x/a") not in got
    assert got[("x/b", "x/a")] is False and got[("y/c", "x/a")] is True
    assert got[("x/b", "z/c")] is False and got[("x/a", "z/c")] is True
    assert sum(not v for v in got.values()) == (8 - 3) + 3


def test_every_case_file_loads_with_tables_over_the_model() -> None:
    cases = load_cases()
    assert len(cases) >= 16
    for case in cases:
        assert case.expect, case.name
        for table in case.expect:
            assert len(expand(table, PODS)) == 72
