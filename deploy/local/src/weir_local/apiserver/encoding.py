"""HTTP content concerns: request body decoding, Accept negotiation, query parameters.

Pure functions over strings and bytes; server.py applies them to aiohttp requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from . import protobuf
from .errors import StatusError, bad_request, unsupported_media_type
from .tables import INCLUDE_METADATA, INCLUDE_VALUES

JSON = "application/json"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
APPLY_PATCH = "application/apply-patch+yaml"


def decode_body(raw: bytes, content_type: str) -> Any:
    """A JSON, YAML or (for kubectl's generators) protobuf request body (400 when malformed,
    415 for other media types)."""
    ctype = content_type.split(";", maxsplit=1)[0].strip().lower()
    if ctype in ("", JSON, "application/octet-stream", "text/plain"):
        try:
            return orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError as e:
            raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None
    if ctype == protobuf.PROTOBUF:
        return protobuf.decode(raw)
    if ctype in YAML_TYPES:
        try:
            return yaml.safe_load(raw.decode())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise bad_request(f"couldn't get version/kind; yaml parse error: {e}") from None
    raise unsupported_media_type(ctype)


def apply_patch_unsupported() -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json (server-side apply, "
        f"{APPLY_PATCH}, is not supported by the Weir local API server: use client-side "
        "`kubectl apply` without --server-side)",
    )


@dataclass(frozen=True, slots=True)
class Output:
    """What the client accepts: plain objects, a Table, or PartialObjectMetadata."""

    as_table: bool = False
    table_version: str = "v1"
    as_partial: bool = False
    include: str = INCLUDE_METADATA


def negotiate(accept: str, query: Mapping[str, str]) -> Output:
    """Pick the first media type in Accept that we serve (kubectl get asks for a Table)."""
    include = query.get("includeObject") or INCLUDE_METADATA
    if include not in INCLUDE_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{include}"')
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if media not in (JSON, "*/*", "application/*"):
            continue
        as_ = params.get("as")
        if as_ is None:
            return Output(include=include)
        if params.get("g") != "meta.k8s.io":
            continue
        version = params.get("v", "v1")
        if version not in ("v1", "v1beta1"):
            continue
        if as_ == "Table":
            return Output(as_table=True, table_version=version, include=include)
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return Output(as_partial=True, table_version=version, include=include)
    return Output(include=include)


def flag(query: Mapping[str, str], name: str) -> bool | None:
    """A boolean query parameter: true/True/1 → True; absent → None."""
    v = query.get(name)
    if v is None:
        return None
    return v.lower() in ("true", "1")


def int_param(query: Mapping[str, str], name: str) -> int | None:
    v = query.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {v!r}") from None


def dry_run(values: list[str]) -> bool:
    for v in values:
        if v not in ("All", ""):
            raise bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return "All" in values


def field_validation(value: str | None) -> str:
    if value is None or value == "":
        return "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", '
            '"Strict", "Warn"'
        )
    return value


def warning_header(message: str) -> str:
    """RFC 7234 Warning header value, as the API server sends warnings (code 299)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def list_body(kind: str, api_version: str, list_meta: dict[str, Any], raws: list[bytes]) -> bytes:
    """A list response assembled from each object's cached JSON, without re-serializing."""
    head = orjson.dumps({"kind": kind, "apiVersion": api_version, "metadata": list_meta})
    return head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
