"""Label selector matching, as Kubernetes defines it."""

from __future__ import annotations

import pytest
from weir.labels import LabelSelector, Operator, Requirement, selector_from_k8s

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, True),
        (None, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
            },
            False,
        ),
    ],
)
def test_structured_selectors(raw: dict[str, object] | None, expected: bool) -> None:
    assert selector_from_k8s(raw).matches(LABELS) is expected


def test_gt_lt_compare_integers_and_never_match_missing_or_non_numeric() -> None:
    gt = Requirement(key="n", operator=Operator.GT, values=("4",))
    assert gt.matches(LABELS)
    assert not Requirement(key="n", operator=Operator.LT, values=("4",)).matches(LABELS)
    assert not gt.matches({})
    assert not gt.matches({"n": "five"})
    assert not gt.matches({"n": "5_0"})  # Kubernetes parses integers strictly
    assert not gt.matches({"n": " 50"})


def test_empty_selector_is_empty() -> None:
    assert LabelSelector().is_empty()
    assert not selector_from_k8s({"matchLabels": {"a": "b"}}).is_empty()


@pytest.mark.parametrize(
    "raw",
    [
        {"matchLabels": ["a"]},
        {"matchExpressions": {"key": "a"}},
        {"matchExpressions": [{"key": "a", "operator": "Near"}]},
    ],
)
def test_malformed_selectors_raise(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        selector_from_k8s(raw)
