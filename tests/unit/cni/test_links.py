"""iproute2 command lines, `ip -j` parsing, and the checks done before any of it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from weir_cni import errors, links
from weir_cni.commands import _endpoint_ids, _route_key, check_netns
from weir_cni.errors import CniError

W = links.Wiring(
    netns="/run/netns/pod1",
    ifname="eth0",
    host_ifname="wr0123456789a",
    ip="10.244.1.5",
    gateway="169.254.1.1",
    mtu=1450,
    pod_mac="0a:00:00:00:00:02",
    host_mac="0a:00:00:00:00:01",
)


def test_peer_is_created_straight_in_the_pod_namespace() -> None:
    assert W.create_commands() == [
        "link add wr0123456789a mtu 1450 address 0a:00:00:00:00:01 type veth"
        " peer name eth0 mtu 1450 address 0a:00:00:00:00:02 netns /run/netns/pod1"
    ]


def test_host_side() -> None:
    assert W.host_commands() == [
        "link set wr0123456789a mtu 1450 up",
        "addr replace 169.254.1.1/32 dev wr0123456789a",
        "route replace 10.244.1.5/32 dev wr0123456789a",
    ]


def test_pod_side() -> None:
    assert W.pod_commands() == [
        "link set eth0 mtu 1450 up",
        "addr replace 10.244.1.5/32 dev eth0",
        "route replace 169.254.1.1 dev eth0 scope link",
        "route replace default via 169.254.1.1 dev eth0",
    ]


def test_json_documents_splits_batch_output() -> None:
    text = '[{"a":1}]\n[]\n  [{"b":[2]}]\n'
    assert list(links.json_documents(text)) == [[{"a": 1}], [], [{"b": [2]}]]
    assert list(links.json_documents("")) == []


def test_snapshot_lookups() -> None:
    snap = links.Snapshot(
        links=[{"ifname": "eth0", "address": "0a:00:00:00:00:02", "flags": ["UP"]}],
        addrs=[
            {
                "ifname": "eth0",
                "addr_info": [
                    {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
                    {"family": "inet", "local": "10.244.1.5", "prefixlen": 32},
                ],
            }
        ],
        routes=[
            {"dst": "default", "gateway": "169.254.1.1", "dev": "eth0"},
            {"dst": "169.254.1.1", "dev": "eth0", "scope": "link"},
        ],
    )
    assert snap.link("eth0") is not None
    assert snap.link("eth1") is None
    assert snap.has_addr("eth0", "10.244.1.5", 32)
    assert not snap.has_addr("eth0", "10.244.1.5", 24)
    assert not snap.has_addr("eth0", "fe80::1", 64)  # IPv4 only
    assert snap.has_route("default", "eth0", "169.254.1.1")
    assert snap.has_route("169.254.1.1", "eth0")
    assert not snap.has_route("default", "eth0")
    assert not snap.has_route("169.254.1.1", "eth1")


@pytest.mark.parametrize(
    ("dst", "key"),
    [("0.0.0.0/0", "default"), ("10.0.0.7/32", "10.0.0.7"), ("10.96.0.0/12", "10.96.0.0/12")],
)
def test_route_keys_match_ip_json(dst: str, key: str) -> None:
    assert _route_key(dst) == key


def test_endpoint_listing_shapes() -> None:
    assert _endpoint_ids({"endpoints": [{"container_id": "a"}, {"x": 1}]}) == ["a"]
    assert _endpoint_ids([{"container_id": "b"}]) == ["b"]
    assert _endpoint_ids(None) == []


def test_missing_netns_is_unknown_container(tmp_path: Path) -> None:
    with pytest.raises(CniError) as info:
        check_netns(str(tmp_path / "gone"))
    assert info.value.code == errors.UNKNOWN_CONTAINER


def test_the_nodes_own_namespace_is_refused() -> None:
    with pytest.raises(CniError) as info:
        check_netns("/proc/self/ns/net")
    assert info.value.code == errors.INVALID_ENV
    assert "own" in info.value.msg


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/uts"), reason="no /proc")
def test_a_file_that_is_no_network_namespace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    for path in (str(tmp_path / "plain"), "/proc/self/ns/uts"):
        with pytest.raises(CniError) as info:
            check_netns(path)
        assert info.value.code == errors.INVALID_ENV


def test_a_netns_path_with_spaces_is_refused() -> None:
    with pytest.raises(CniError) as info:
        check_netns("/run/netns/a b")
    assert info.value.code == errors.INVALID_ENV


def test_tools_are_found_outside_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(links, "_tools", {})
    if not any(os.access(f"{d}/ip", os.X_OK) for d in links._FALLBACK_DIRS):
        pytest.skip("no iproute2 here")
    assert links.tool("ip").endswith("/ip")
    with pytest.raises(CniError) as info:
        links.tool("no-such-tool-weir")
    assert info.value.code == errors.LINK_FAILED
