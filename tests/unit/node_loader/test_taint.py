"""The JSON patch that removes node.weir.io/agent-not-ready and nothing else."""

from __future__ import annotations

from weir_node_loader.taint import TAINT_KEY, removal_patch

OURS = {"key": TAINT_KEY, "effect": "NoSchedule"}


def test_only_our_taint_is_removed_and_each_removal_is_guarded_by_a_test() -> None:
    taints = [
        {"key": "other", "effect": "NoSchedule"},
        OURS,
        {"key": TAINT_KEY, "effect": "NoExecute"},
    ]
    assert removal_patch(taints) == [
        {"op": "test", "path": "/spec/taints/1", "value": OURS},
        {"op": "remove", "path": "/spec/taints/1"},
    ]


def test_duplicates_are_removed_from_the_highest_index_down() -> None:
    ops = removal_patch([OURS, {"key": "x", "effect": "NoSchedule"}, OURS])
    assert [o["path"] for o in ops] == ["/spec/taints/2"] * 2 + ["/spec/taints/0"] * 2


def test_nothing_to_remove_is_an_empty_patch() -> None:
    assert removal_patch([]) == [] and removal_patch([{"key": "x", "effect": "NoSchedule"}]) == []
