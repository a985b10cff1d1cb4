"""Label and field selectors in their string form, as list and watch requests carry them.

(Being written by a helper: the signatures below are the contract the server codes against.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weir.labels import LabelSelector


class SelectorError(ValueError):
    """A selector that cannot be parsed or names an unsupported field; the server answers 400."""


def parse_label_selector(text: str) -> LabelSelector:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h,i>1` into a LabelSelector. '' matches all."""
    raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of `field=value` / `field!=value` terms over one kind's supported fields."""

    kind: str
    terms: tuple[tuple[str, str, str], ...]  # (field path, "=" or "!=", value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        raise NotImplementedError


def parse_field_selector(text: str, kind: str) -> FieldSelector:
    """Parse `metadata.name=x,spec.nodeName!=` for `kind`; unsupported fields raise SelectorError."""
    raise NotImplementedError
