"""The bytes of an EndpointPolicy in weir-policy: the catalogue's envelope, deterministically.

weir.codec encodes with msgspec's `order="deterministic"`, which refuses maps with non-string
keys — and `EndpointPolicy.cookies` is keyed by the (integer) cookie. So this writer encodes the
same envelope `[schema_version, type, payload]` in field order with the cookie map re-inserted
sorted by cookie: equal policies still give equal bytes (so unchanged values cost no write), and
every reader decodes them with the catalogue's Codec as usual.
"""

from __future__ import annotations

from dataclasses import replace

import msgspec
from weir.catalog import POLICY_SCHEMA
from weir.models import EndpointPolicy

_ENCODER = msgspec.msgpack.Encoder()  # insertion order: dataclass fields, then sorted cookies


def encode_policy(policy: EndpointPolicy) -> bytes:
    ordered = replace(policy, cookies=dict(sorted(policy.cookies.items())))
    return _ENCODER.encode((POLICY_SCHEMA.version, type(policy).__name__, ordered))
