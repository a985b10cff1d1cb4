"""The contract between the CNI plugin and node-loader: endpoint registration over a unix socket.

HTTP/1.1 with JSON bodies on node-loader's socket (default `DEFAULT_SOCKET`):

- `PUT /v1/endpoints/<container id>` with an `EndpointRequest`: make the endpoint's datapath
  exist (the pod's policy from KV weir-policy — waited for, bounded, and for the same pod uid
  when `pod_uid` is given — then maps written, programs attached, KV weir-endpoints written),
  then answer 200 with the `EndpointRecord` fields. Idempotent: the same request again changes
  nothing. 503 when the policy has not arrived in time: a pod is never briefly unprotected.
- `GET /v1/endpoints/<container id>`: 200 with the record (and `counters`), or 404.
- `DELETE /v1/endpoints/<container id>`: remove all of it; 200 also for an unknown id.
- `GET /v1/endpoints`: every endpoint on the node, with its packet and byte counters.
- `GET /v1/healthz`: 200 once node-loader can serve registrations.

Errors are `{"error": "..."}` with 400 (bad request), 503 (not ready yet: try again later) or
500 (the datapath could not be programmed). Stdlib only: the CNI plugin imports this module and
must start fast.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

DEFAULT_SOCKET = "/var/run/weir/node-loader.sock"
PREFIX = "/v1/endpoints"


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRequest:
    """What the CNI plugin tells node-loader after wiring a pod's veth."""

    container_id: str
    pod_namespace: str
    pod_name: str
    ip: str
    mac: str  # the pod side (eth0)
    host_ifname: str
    host_ifindex: int
    host_mac: str
    netns: str
    ifname: str
    pod_uid: str = ""  # K8S_POD_UID from CNI_ARGS; "" when the runtime did not send it

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> EndpointRequest:
        """Parse and check types; raises ValueError naming the field."""
        try:
            raw = json.loads(body)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ValueError("an endpoint request is a JSON object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                if f.default is not MISSING:
                    continue
                raise ValueError(f"{f.name} is required")
            value = raw[f.name]
            want = int if f.type in ("int", int) else str
            if isinstance(value, bool) or not isinstance(value, want):
                raise ValueError(f"{f.name} must be a {want.__name__}")
            values[f.name] = value
        unknown = sorted(set(raw) - set(values))
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(unknown)}")
        return cls(**values)


def path(container_id: str) -> str:
    return f"{PREFIX}/{container_id}"
