"""Validation of the served kinds, with the field paths and messages of the real API server.

(Being written by a helper: the signatures below are the contract the server codes against.)
"""

from __future__ import annotations

from typing import Any

from .errors import FieldError


def validate_create(kind: str, obj: dict[str, Any]) -> list[FieldError]:
    """All problems with a new object (already defaulted). Empty list = valid."""
    raise NotImplementedError


def validate_update(kind: str, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """All problems with replacing `old` by `new` (both defaulted), immutability included."""
    raise NotImplementedError


def validate_status_update(kind: str, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Problems with a write to the status subresource (`new` carries old spec, new status)."""
    raise NotImplementedError
