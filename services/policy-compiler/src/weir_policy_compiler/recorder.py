"""Posts the Events of unusable policies to the Kubernetes API, off the compile path.

Reports queue here and one task posts them, retrying with backoff; an API server that is
unreachable (or a kubeconfig that does not load) costs log lines and a metric, never a
compilation or a barrier. Policies usable again are only logged: the Warning stays in the
policy's history, as upstream controllers leave theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from weir.kube import api_client

from .core import Report
from .events import event_body
from .metrics import Metrics

log = logging.getLogger("weir.policy_compiler.events")

RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
QUEUE_LIMIT = 1000


class EventRecorder:
    def __init__(self, *, kubeconfig: str, metrics: Metrics, enabled: bool = True) -> None:
        self._kubeconfig = kubeconfig
        self._metrics = metrics
        self._enabled = enabled
        self._queue: asyncio.Queue[Report] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._api: client.ApiClient | None = None
        self._instance = socket.gethostname()

    def report(self, report: Report) -> None:
        ref = f"{report.namespace}/{report.name}"
        if not report.problems:
            log.info("NetworkPolicy %s is fully enforceable again", ref, extra={"policy": ref})
            return
        self._metrics.reports.inc()
        log.warning(
            "NetworkPolicy %s cannot be fully enforced: %s",
            ref,
            "; ".join(report.problems),
            extra={"policy": ref, "problems": list(report.problems)},
        )
        if not self._enabled:
            return
        try:
            self._queue.put_nowait(report)
        except asyncio.QueueFull:
            self._metrics.events.labels("dropped").inc()

    async def run(self) -> None:
        try:
            while True:
                report = await self._queue.get()
                await self._post(report)
        finally:
            if self._api is not None:
                with contextlib.suppress(Exception):
                    await self._api.close()

    async def _post(self, report: Report) -> None:
        body = event_body(report, now=datetime.now(UTC), instance=self._instance)
        ref = f"{report.namespace}/{report.name}"
        for delay in (*RETRY_SECONDS, None):
            try:
                if self._api is None:
                    self._api = await api_client(self._kubeconfig)
                # The generated client sends a plain dict as it is (no model class needed).
                await client.CoreV1Api(self._api).create_namespaced_event(
                    report.namespace,
                    body,  # type: ignore[arg-type]
                )
            except ApiException as e:
                if e.status == 409:  # this report was made already (a restart, a replica)
                    self._metrics.events.labels("exists").inc()
                    return
                if e.status is not None and 400 <= e.status < 500 and e.status != 429:
                    log.error("Event for %s refused: %s %s", ref, e.status, e.reason)
                    self._metrics.events.labels("refused").inc()
                    return
                why = f"{e.status} {e.reason}"
            except Exception as e:  # unreachable API, kubeconfig that does not load, ...
                why = str(e) or type(e).__name__
            else:
                self._metrics.events.labels("created").inc()
                log.info("posted Event %s for %s", body["metadata"]["name"], ref)
                return
            if delay is None:
                log.error("giving up on the Event for %s: %s", ref, why, extra={"policy": ref})
                self._metrics.events.labels("failed").inc()
                return
            log.warning("Event for %s not posted (%s); retrying in %.1fs", ref, why, delay)
            await asyncio.sleep(delay)
