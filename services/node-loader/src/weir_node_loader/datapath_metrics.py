"""The datapath's own counters in /metrics, read from the pinned maps at every scrape.

The programs count every verdict per (reason, direction) and every verdict event they sent,
suppressed (rate limit) or lost (ring buffer full), in per-CPU arrays; this collector sums the
CPUs and exposes them with the reason's label from the one table (maps.Reason):

- `weir_datapath_drops_total{reason,direction}`      packets dropped (and `_bytes_total`)
- `weir_datapath_verdicts_total{verdict,reason,direction}`  new flows that met policy (or an
  unenforced direction): allowed or denied
- `weir_datapath_conntrack_packets_total{reason,direction}` packets passed as established,
  reply or related
- `weir_datapath_events_total{outcome}`               sent, suppressed, lost

Reading is a few hundred lookups of tiny arrays: cheap enough to do per scrape, on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from weir_node_loader.maps import Direction, EventCounter, Reason

log = logging.getLogger("weir.node_loader.metrics")

Stats = tuple[dict[tuple[Reason, Direction], tuple[int, int]], dict[EventCounter, int]]
VERDICT_REASONS = {
    Reason.POLICY_ALLOW: "allow",
    Reason.NOT_ENFORCED: "allow",
    Reason.POLICY_DENIED: "deny",
    Reason.POLICY_DENY_RULE: "deny",
}
CT_REASONS = (Reason.CT_ESTABLISHED, Reason.CT_REPLY, Reason.CT_RELATED)


def direction_label(direction: Direction) -> str:
    return "egress" if direction == Direction.FROM_POD else "ingress"


class DatapathCollector(Collector):
    def __init__(self, read: Callable[[], Stats]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        try:
            reasons, events = self._read()
        except Exception as e:  # the maps are gone (shutdown): no samples rather than a 500
            log.warning("cannot read the datapath counters: %s", e)
            return
        drops = CounterMetricFamily(
            "weir_datapath_drops", "Packets dropped by the datapath", labels=["reason", "direction"]
        )
        drop_bytes = CounterMetricFamily(
            "weir_datapath_drop_bytes",
            "Bytes of packets dropped by the datapath",
            labels=["reason", "direction"],
        )
        verdicts = CounterMetricFamily(
            "weir_datapath_verdicts",
            "New flows that met policy (or a direction no policy isolates), by verdict",
            labels=["verdict", "reason", "direction"],
        )
        tracked = CounterMetricFamily(
            "weir_datapath_conntrack_packets",
            "Packets passed without meeting policy: established, reply, related",
            labels=["reason", "direction"],
        )
        for (reason, direction), (packets, nbytes) in sorted(reasons.items()):
            d = direction_label(direction)
            if reason.is_drop:
                drops.add_metric([reason.label, d], packets)
                drop_bytes.add_metric([reason.label, d], nbytes)
            if reason in VERDICT_REASONS:
                verdicts.add_metric([VERDICT_REASONS[reason], reason.label, d], packets)
            if reason in CT_REASONS:
                tracked.add_metric([reason.label, d], packets)
        sent = CounterMetricFamily(
            "weir_datapath_events",
            "Verdict events: sent to the ring buffer, suppressed by the rate limit, lost "
            "(ring buffer full)",
            labels=["outcome"],
        )
        for counter, value in sorted(events.items()):
            sent.add_metric([counter.name.lower()], value)
        yield from (drops, drop_bytes, verdicts, tracked, sent)
