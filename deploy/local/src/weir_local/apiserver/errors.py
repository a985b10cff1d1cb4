"""Kubernetes API errors: field errors from validation and the Status objects clients receive.

Every failure the API server returns is a `StatusError`; the HTTP layer turns it into a
`kind: Status` body with the same code, reason and details a real kube-apiserver sends, so
kubectl prints the messages users already know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FieldErrorType(StrEnum):
    """The `reason` of a Status cause, as k8s.io/apimachinery/pkg/util/validation/field names it."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"


_OMIT = object()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, e.g. `spec.ports[0].port: Invalid value: 70000: must be ...`."""

    type: FieldErrorType
    field: str
    detail: str = ""
    bad_value: Any = _OMIT

    def message(self) -> str:
        """The cause message without the field path, worded as the real API server words it."""
        t = self.type
        if t is FieldErrorType.REQUIRED:
            head = "Required value"
        elif t is FieldErrorType.FORBIDDEN:
            head = "Forbidden"
        elif t is FieldErrorType.TOO_LONG:
            head = "Too long"
        elif t is FieldErrorType.TOO_MANY:
            head = "Too many" if self.bad_value is _OMIT else f"Too many: {_render(self.bad_value)}"
        elif t is FieldErrorType.INTERNAL:
            head = "Internal error"
        elif t is FieldErrorType.NOT_FOUND:
            head = f"Not found: {_render(self.bad_value)}"
        elif t is FieldErrorType.DUPLICATE:
            head = f"Duplicate value: {_render(self.bad_value)}"
        elif t is FieldErrorType.NOT_SUPPORTED:
            head = f"Unsupported value: {_render(self.bad_value)}"
        elif t is FieldErrorType.TYPE_INVALID:
            head = f"Invalid value: {_render(self.bad_value)}"
        else:
            head = (
                "Invalid value"
                if self.bad_value is _OMIT
                else (f"Invalid value: {_render(self.bad_value)}")
            )
        return f"{head}: {self.detail}" if self.detail else head

    def __str__(self) -> str:
        return f"{self.field}: {self.message()}"


def _render(value: Any) -> str:
    if value is _OMIT:
        return ""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# Convenience constructors, named as in Go's field package.
def required(path: str, detail: str = "") -> FieldError:
    return FieldError(FieldErrorType.REQUIRED, path, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(FieldErrorType.INVALID, path, detail, value)


def not_supported(path: str, value: Any, valid: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(v) for v in valid) if valid else ""
    return FieldError(FieldErrorType.NOT_SUPPORTED, path, detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FieldErrorType.FORBIDDEN, path, detail)


def field_not_found(path: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.NOT_FOUND, path, "", value)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.DUPLICATE, path, "", value)


def too_long(path: str, max_length: int) -> FieldError:
    return FieldError(FieldErrorType.TOO_LONG, path, f"may not be more than {max_length} bytes")


def too_many(path: str, actual: int, max_items: int) -> FieldError:
    return FieldError(FieldErrorType.TOO_MANY, path, f"must have at most {max_items} items", actual)


@dataclass
class StatusError(Exception):
    """An API failure, rendered as a metav1.Status body with HTTP status `code`."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(kind_plural: str, group: str) -> str:
    return f"{kind_plural}.{group}" if group else kind_plural


def not_found(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        {"name": name, "group": group, "kind": resource},
    )


def unprocessable(kind: str, group: str, name: str, errors: list[FieldError]) -> StatusError:
    """422 Invalid: the message kubectl prints as `The Pod "x" is invalid: ...`."""
    qualified = f"{kind}.{group}" if group else kind
    causes = [{"reason": str(e.type), "message": e.message(), "field": e.field} for e in errors]
    summary = "; ".join(str(e) for e in errors)
    if len(errors) > 1:
        summary = "[" + ", ".join(str(e) for e in errors) + "]"
    return StatusError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def forbidden_status(resource: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(
        403,
        "Forbidden",
        f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
        {"name": name, "group": group, "kind": resource},
    )


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    accepted = (
        "application/json, application/yaml, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/json-patch+json"
    )
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f'{accepted} (got "{content_type}")',
    )
