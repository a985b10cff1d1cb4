"""Whether the node's CNI network is configured: the runtime's NetworkReady.

The CNI config directory is looked at every `poll` seconds (a directory listing, and a read
of the conflists when the listing or their times change); subscribers hear about every
change of the configuration in effect, with whether the network is ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .cni import NetworkConfig, find_network

log = logging.getLogger(__name__)


class NetworkWatch:
    def __init__(self, conf_dir: Path, network: str, *, poll: float = 1.0) -> None:
        self.conf_dir = conf_dir
        self.network = network
        self.poll = poll
        self.current: NetworkConfig | None = None
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._subscribers: list[Callable[[bool], None]] = []

    @property
    def ready(self) -> bool:
        return self.current is not None

    def subscribe(self, fn: Callable[[bool], None]) -> None:
        self._subscribers.append(fn)

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        try:
            names = sorted(n for n in os.listdir(self.conf_dir) if n.endswith(".conflist"))
        except OSError:
            return ()
        out = []
        for n in names:
            try:
                st = os.stat(self.conf_dir / n)
            except OSError:
                continue
            out.append((n, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def refresh(self) -> bool:
        """Re-read when the directory changed; True when the configuration in effect changed."""
        stamp = self._listing()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        net, problems = find_network(self.conf_dir, self.network)
        for p in problems:
            log.warning("CNI config: %s", p)
        before = self.current
        if (net.raw if net else None) == (before.raw if before else None):
            return False
        self.current = net
        if net is None:
            log.warning("network %r not configured in %s", self.network, self.conf_dir)
        else:
            log.info("network %r configured by %s", self.network, net.path)
        for fn in self._subscribers:
            fn(net is not None)
        return True

    async def run(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.poll)
