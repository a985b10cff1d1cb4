"""The ADD result per cniVersion, and reading prevResult back for CHECK."""

from __future__ import annotations

from typing import Any

import pytest
from weir_cni import errors
from weir_cni.errors import CniError
from weir_cni.result import Attached, expected, render

POD = Attached(
    ip="10.244.1.7",
    gateway="169.254.1.1",
    host_ifname="wr0123456789a",
    host_mac="0a:00:00:00:00:01",
    ifname="eth0",
    pod_mac="0a:00:00:00:00:02",
    netns="/var/run/netns/cni-1",
)


def test_result_1_0() -> None:
    assert render("1.0.0", POD) == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "wr0123456789a", "mac": "0a:00:00:00:00:01"},
            {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [{"address": "10.244.1.7/32", "gateway": "169.254.1.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
    }


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_older_results_carry_the_ip_version(version: str) -> None:
    out = render(version, POD)
    assert out["cniVersion"] == version
    assert out["ips"] == [
        {"version": "4", "address": "10.244.1.7/32", "gateway": "169.254.1.1", "interface": 1}
    ]


def test_dns_from_the_config_is_passed_on() -> None:
    dns = {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
    assert render("1.0.0", POD, dns)["dns"] == dns
    assert "dns" not in render("1.0.0", POD, {})


def test_expected_reads_back_what_add_printed() -> None:
    want = expected(render("1.0.0", POD), "eth0")
    assert want.ip == "10.244.1.7"
    assert want.prefix == 32
    assert want.gateway == "169.254.1.1"
    assert want.pod_mac == POD.pod_mac
    assert want.host_ifname == POD.host_ifname
    assert want.host_mac == POD.host_mac
    assert want.routes == (("0.0.0.0/0", "169.254.1.1"),)


def test_expected_ignores_other_interfaces_and_ipv6() -> None:
    prev: dict[str, Any] = render("1.0.0", POD)
    prev["interfaces"].append({"name": "net1", "sandbox": "/x"})
    prev["ips"] += [
        {"address": "192.168.0.2/24", "interface": 2},
        {"address": "fd00::7/128", "interface": 1},
    ]
    assert expected(prev, "eth0").ip == "10.244.1.7"


@pytest.mark.parametrize(
    "prev",
    [
        {"interfaces": [], "ips": []},
        {"interfaces": [{"name": "eth0"}], "ips": []},  # no sandbox: not the pod's
        {"interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": []},
        {"interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": [{"address": "nope"}]},
        {"interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": [{}]},
        {"interfaces": "x", "ips": []},
        {
            "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"address": "10.0.0.1/32"}, {"address": "10.0.0.2/32"}],
        },
        {
            "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"address": "10.0.0.1/32"}],
            "routes": [{"gw": "1.1.1.1"}],
        },
    ],
)
def test_unusable_prev_result_is_code_7(prev: dict[str, Any]) -> None:
    with pytest.raises(CniError) as info:
        expected(prev, "eth0")
    assert info.value.code == errors.INVALID_CONFIG


def test_prev_result_in_an_unknown_version_is_code_1() -> None:
    prev = {**render("1.0.0", POD), "cniVersion": "7.0.0"}
    with pytest.raises(CniError) as info:
        expected(prev, "eth0")
    assert info.value.code == errors.INCOMPATIBLE_VERSION
