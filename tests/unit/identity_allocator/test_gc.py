"""Garbage-collection timing, on an injected clock."""

from __future__ import annotations

import pytest
from weir_identity_allocator.gc import Collector


def test_an_unused_number_is_due_only_after_the_grace_period() -> None:
    gc = Collector(grace=300)
    assert gc.observe([300, 301], used={301}, now=1000) == []
    assert gc.unused_since(300) == 1000 and gc.unused_since(301) is None
    assert gc.next_due() == 1300
    assert gc.observe([300, 301], used={301}, now=1299.9) == []
    assert gc.observe([300, 301], used={301}, now=1300) == [300]


def test_a_use_in_between_restarts_the_grace_period() -> None:
    gc = Collector(grace=300)
    gc.observe([300], used=set(), now=0)
    gc.observe([300], used={300}, now=200)  # a pod with these labels came back
    assert gc.next_due() is None
    assert gc.observe([300], used=set(), now=250) == []
    assert gc.observe([300], used=set(), now=549) == []
    assert gc.observe([300], used=set(), now=550) == [300]


def test_at_start_everything_unused_starts_a_fresh_grace_period() -> None:
    # Level-triggered: a restarted allocator knows nothing of how long a number was unused.
    gc = Collector(grace=60)
    assert gc.observe([300, 400, 500], used={400}, now=10_000) == []
    assert gc.observe([300, 400, 500], used={400}, now=10_060) == [300, 500]


def test_numbers_gone_from_the_bucket_are_forgotten() -> None:
    gc = Collector(grace=10)
    gc.observe([300, 301], used=set(), now=0)
    gc.observe([301], used=set(), now=5)  # 300 released (by us or another replica)
    assert gc.unused_since(300) is None
    assert gc.next_due() == 10
    assert gc.next_due(skip={301}) is None  # a release under way is not waited for


def test_a_release_that_found_a_user_waits_a_whole_grace_period_again() -> None:
    gc = Collector(grace=10)
    gc.observe([300], used=set(), now=0)
    assert gc.observe([300], used=set(), now=10) == [300]
    gc.restart(300, now=11)
    assert gc.observe([300], used=set(), now=12) == []
    assert gc.observe([300], used=set(), now=21) == [300]


def test_zero_grace_releases_at_once_and_negative_is_refused() -> None:
    assert Collector(grace=0).observe([300], used=set(), now=5) == [300]
    with pytest.raises(ValueError):
        Collector(grace=-1)
