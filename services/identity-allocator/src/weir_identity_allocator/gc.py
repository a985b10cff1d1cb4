"""When an unused identity is released: after a grace period, measured with an injected clock.

An identity stays allocated while anything uses it and for `grace` seconds after the last use,
so a rollout, a pod restarted elsewhere or a policy re-applied gets the same number back and no
policy table churns. Level-triggered: each pass hands in the numbers in use and the numbers that
exist; one that exists unused starts its grace period the first time it is seen so — at start,
everything unused starts fresh, since how long it had been unused before is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Set


class Collector:
    def __init__(self, grace: float) -> None:
        if grace < 0:
            raise ValueError("the grace period cannot be negative")
        self.grace = grace
        self._unused_since: dict[int, float] = {}

    def observe(self, existing: Iterable[int], used: Set[int], now: float) -> list[int]:
        """Record which numbers are in use at `now`; return those due for release, in order."""
        seen = set()
        due = []
        for number in existing:
            seen.add(number)
            if number in used:
                self._unused_since.pop(number, None)
                continue
            since = self._unused_since.setdefault(number, now)
            if now - since >= self.grace:
                due.append(number)
        for number in list(self._unused_since):
            if number not in seen:
                del self._unused_since[number]  # gone: released, by us or another replica
        return sorted(due)

    def unused_since(self, number: int) -> float | None:
        return self._unused_since.get(number)

    def next_due(self, skip: Set[int] = frozenset()) -> float | None:
        """When the next grace period ends, ignoring `skip` (releases under way); None when
        nothing is waiting."""
        times = [t for n, t in self._unused_since.items() if n not in skip]
        return min(times) + self.grace if times else None

    def restart(self, number: int, now: float) -> None:
        """A release found the number in use after all: count its grace period from now."""
        if number in self._unused_since:
            self._unused_since[number] = now
