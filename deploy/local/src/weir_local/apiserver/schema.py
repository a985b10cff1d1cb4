"""Decoding against the Kubernetes type schema: unknown fields and wrongly typed values.

A real API server decodes JSON into Go structs, so unknown fields vanish (and are reported under
fieldValidation=Strict/Warn) and a string where an int belongs is a 400. This module does the same
from the field tables of the kubernetes-asyncio models.

(Being written by a helper: the signatures below are the contract the server codes against.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DecodeResult:
    unknown_fields: list[str] = field(default_factory=list)  # e.g. 'spec.containers[0].foo'
    type_errors: list[str] = field(default_factory=list)  # human-readable, one per bad value


def prune(kind: str, obj: dict[str, Any]) -> DecodeResult:
    """Remove unknown fields from `obj` in place and report them and any type errors."""
    raise NotImplementedError
