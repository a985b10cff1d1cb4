"""Kubernetes label selectors: one representation and one matcher for every Weir component.

A `LabelSelector` is the structured form (matchLabels + matchExpressions) that Services and
NetworkPolicies carry; the local API server parses the string form (`a=b,c in (x,y),!d`) into
the same type, so there is a single implementation of what "matches" means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    # Only the string form of a selector has these (kubectl get -l 'x>1').
    GT = "Gt"
    LT = "Lt"


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _integer(text: str) -> int | None:
    """The integer `text` spells, strictly (Python's int() would also take "5_0" or " 5")."""
    return int(text) if _INTEGER.fullmatch(text) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        present = self.key in labels
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        if op is Operator.IN:
            return present and labels[self.key] in self.values
        if op is Operator.NOT_IN:
            # Kubernetes: NotIn matches objects that lack the key.
            return not present or labels[self.key] not in self.values
        if not present or not self.values:
            return False
        have, want = _integer(labels[self.key]), _integer(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GT else have < want


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """matchLabels AND every matchExpression. The empty selector matches everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


def selector_from_k8s(raw: Mapping[str, object] | None) -> LabelSelector:
    """The structured selector of a Kubernetes object (`{matchLabels, matchExpressions}`).

    Absent parts are empty; a selector of the wrong shape or with an unknown operator raises
    ValueError (the API server validates selectors, so this only guards against bad input).
    """
    if not raw:
        return LabelSelector()
    labels = raw.get("matchLabels") or {}
    exprs = raw.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not isinstance(exprs, list):
        raise ValueError("a label selector needs a matchLabels map and a matchExpressions list")
    return LabelSelector(
        match_labels={str(k): str(v) for k, v in labels.items()},
        match_expressions=tuple(
            Requirement(
                key=str(e["key"]),
                operator=Operator(e["operator"]),
                values=tuple(str(v) for v in e.get("values") or ()),
            )
            for e in exprs
        ),
    )
