"""The Kubernetes Event that reports a NetworkPolicy Weir cannot fully enforce. No I/O.

A core/v1 Event on the policy (involvedObject), type Warning, reason `PolicyNotEnforceable`,
whose message lists each part that could not be compiled. Its name is derived from the policy's
uid and the problems, so a restarted or second replica re-reporting the same problems creates
nothing new (the API answers 409 and the report counts as made).
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from .core import Report

REASON = "PolicyNotEnforceable"
COMPONENT = "weir-policy-compiler"
MESSAGE_LIMIT = 1024  # what kubectl shows in full; the API allows more, readers do not
NAME_LIMIT = 253


def event_name(report: Report) -> str:
    digest = zlib.crc32("\n".join((report.uid, *report.problems)).encode())
    return f"{report.name[: NAME_LIMIT - 9]}.{digest:08x}"


def event_message(report: Report) -> str:
    text = (
        "Weir cannot enforce part of this NetworkPolicy (those parts allow nothing; the policy "
        "still isolates the pods it selects): " + "; ".join(report.problems)
    )
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def event_body(report: Report, *, now: datetime, instance: str) -> dict[str, Any]:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(report), "namespace": report.namespace},
        "involvedObject": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "namespace": report.namespace,
            "name": report.name,
            "uid": report.uid,
            "resourceVersion": report.resource_version,
        },
        "reason": REASON,
        "message": event_message(report),
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
