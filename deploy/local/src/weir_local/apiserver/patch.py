"""The three PATCH flavours: JSON merge patch, strategic merge patch, JSON patch.

(Being written by a helper: the signatures below are the contract the server codes against.)
"""

from __future__ import annotations

from typing import Any


class PatchError(Exception):
    """A patch that cannot be applied. `code` is the HTTP status the server answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def json_merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 (application/merge-patch+json). Returns a new value; inputs are not changed."""
    raise NotImplementedError


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """application/strategic-merge-patch+json for one of the served kinds. Returns a new dict."""
    raise NotImplementedError


def json_patch(original: Any, operations: Any) -> Any:
    """RFC 6902 (application/json-patch+json). Returns a new value; inputs are not changed."""
    raise NotImplementedError
