"""ipcache.py: KV weir-ipcache as this node's datapath sees it, diffs, user-space LPM."""

from __future__ import annotations

from weir.identity import Reserved
from weir.models import IPCacheEntry, IPCacheKind
from weir_node_loader import ipcache
from weir_node_loader.ipcache import Value
from weir_node_loader.maps import IPCacheFlag
from weir_node_loader.maps import IPCacheKind as K

NODE = "node-1"


def entries() -> list[IPCacheEntry]:
    return [
        IPCacheEntry(prefix="0.0.0.0/0", identity=Reserved.WORLD, kind=IPCacheKind.WORLD),
        IPCacheEntry(prefix="10.0.0.0/8", identity=(1 << 24) | 1, kind=IPCacheKind.CIDR),
        IPCacheEntry(
            prefix="10.244.1.5/32",
            identity=300,
            kind=IPCacheKind.POD,
            pod_namespace="x",
            pod_name="a",
            node=NODE,
        ),
        IPCacheEntry(
            prefix="172.18.0.2/32",
            identity=Reserved.REMOTE_NODE,
            kind=IPCacheKind.NODE,
            node=NODE,
        ),
        IPCacheEntry(
            prefix="172.18.0.3/32",
            identity=Reserved.REMOTE_NODE,
            kind=IPCacheKind.NODE,
            node="node-2",
        ),
    ]


def test_own_node_addresses_are_host_and_other_nodes_stay_remote_node() -> None:
    tables, problems = ipcache.desired(entries(), NODE, ["169.254.1.1"])
    assert problems == []
    assert tables.main["172.18.0.2/32"] == Value(Reserved.HOST, K.NODE)
    assert tables.main["172.18.0.3/32"] == Value(Reserved.REMOTE_NODE, K.NODE)
    assert tables.main["169.254.1.1/32"] == Value(Reserved.HOST, K.NODE, IPCacheFlag.LOCAL)
    assert tables.main["10.244.1.5/32"] == Value(300, K.POD)
    # On node-2 the same KV means the opposite.
    other, _ = ipcache.desired(entries(), "node-2")
    assert other.main["172.18.0.2/32"].identity == Reserved.REMOTE_NODE
    assert other.main["172.18.0.3/32"].identity == Reserved.HOST


def test_only_cidr_and_world_entries_go_to_the_cidr_table() -> None:
    tables, _ = ipcache.desired(entries(), NODE)
    assert set(tables.cidr) == {"0.0.0.0/0", "10.0.0.0/8"}
    assert all(v.flags & IPCacheFlag.CIDR for v in tables.cidr.values())
    assert not tables.main["10.244.1.5/32"].flags & IPCacheFlag.CIDR


def test_a_cidr_identity_carried_by_a_pod_entry_goes_to_the_cidr_table() -> None:
    pod = IPCacheEntry(
        prefix="10.244.1.3/32",
        identity=4201,
        kind=IPCacheKind.POD,
        pod_namespace="y",
        pod_name="b",
        node=NODE,
        cidr_identity=(1 << 24) | 5,
    )
    tables, problems = ipcache.desired([pod], NODE)
    assert not problems
    assert tables.main["10.244.1.3/32"] == Value(4201, K.POD)
    assert tables.cidr["10.244.1.3/32"] == Value((1 << 24) | 5, K.CIDR, IPCacheFlag.CIDR)


def test_prefixes_are_normalized_and_bad_ones_reported() -> None:
    bad = [
        IPCacheEntry(prefix="10.1.2.3/16", identity=(1 << 24) | 2, kind=IPCacheKind.CIDR),
        IPCacheEntry(prefix="fd00::/64", identity=(1 << 24) | 3, kind=IPCacheKind.CIDR),
        IPCacheEntry(prefix="nonsense", identity=(1 << 24) | 4, kind=IPCacheKind.CIDR),
    ]
    tables, problems = ipcache.desired(bad, NODE)
    assert list(tables.main) == ["10.1.0.0/16"]
    assert len(problems) == 2


def test_diff_writes_the_difference_only() -> None:
    have = {"10.0.0.0/8": Value(5, K.CIDR, 1), "10.1.0.0/16": Value(6, K.CIDR, 1)}
    want = {"10.0.0.0/8": Value(5, K.CIDR, 1), "10.2.0.0/16": Value(7, K.CIDR, 1)}
    d = ipcache.diff(want, have)
    assert d.put == {"10.2.0.0/16": Value(7, K.CIDR, 1)} and d.delete == ("10.1.0.0/16",)
    assert not ipcache.diff(want, want)


def test_user_space_lpm_finds_the_longest_prefix() -> None:
    lpm = ipcache.Lpm({"0.0.0.0/0": 1, "10.0.0.0/8": 2, "10.244.1.5/32": 3})
    assert lpm.match("10.244.1.5") == "10.244.1.5/32"
    assert lpm.match("10.244.1.6") == "10.0.0.0/8"
    assert lpm.match("8.8.8.8") == "0.0.0.0/0"
    assert ipcache.Lpm({}).match("8.8.8.8") is None
