"""This node's keys in KV weir-endpoints: `<node>.<container id>` -> EndpointRecord."""

from __future__ import annotations

from weir import catalog
from weir.bus import TypedKv
from weir.models import EndpointRecord


class KvEndpointStore:
    def __init__(self, kv: TypedKv[EndpointRecord], node: str) -> None:
        self._kv = kv
        self._node = node
        self._prefix = f"{node}."

    async def snapshot(self) -> dict[str, EndpointRecord | None]:
        """Every key of this node; None for a value that cannot be decoded (logged, counted)."""
        entries = await self._kv.raw.snapshot(f"{self._node}.>")
        out: dict[str, EndpointRecord | None] = {}
        for key, entry in entries.items():
            if entry.value is None or not key.startswith(self._prefix):
                continue
            out[key[len(self._prefix) :]] = self._kv.decode(key, entry.value)
        return out

    async def put(self, record: EndpointRecord) -> None:
        await self._kv.put(catalog.endpoint_key(self._node, record.container_id), record)

    async def delete(self, container_id: str) -> None:
        await self._kv.delete(catalog.endpoint_key(self._node, container_id))
