"""Small helpers over object metadata and timestamps shared by the API server modules."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

# Upstream's names.SimpleNameGenerator alphabet: lowercase consonants and digits without
# look-alikes, so generated names never spell words.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LENGTH = 5
MAX_GENERATE_NAME_PREFIX = 63 - GENERATED_SUFFIX_LENGTH


def generate_name(prefix: str) -> str:
    """`prefix` plus 5 random characters, the prefix cut so the result fits 63 chars."""
    suffix = "".join(secrets.choice(_ALPHANUMS) for _ in range(GENERATED_SUFFIX_LENGTH))
    return prefix[:MAX_GENERATE_NAME_PREFIX] + suffix


def format_time(t: datetime) -> str:
    """RFC 3339 at second precision, as metav1.Time serializes."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_epoch(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (with or without fraction), None if unparsable."""
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def deep_copy(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(obj))


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    lab = meta(obj).get("labels")
    return lab if isinstance(lab, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    n = meta(obj).get("name")
    return n if isinstance(n, str) else ""


def namespace_of(obj: Mapping[str, Any]) -> str:
    n = meta(obj).get("namespace")
    return n if isinstance(n, str) else ""
