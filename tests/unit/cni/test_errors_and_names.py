"""CNI error objects and the names and MACs derived from a container id."""

from __future__ import annotations

import pickle
import re

from weir_cni import errors
from weir_cni.errors import CniError
from weir_cni.names import HOST_IFNAME, host_ifname, host_mac, pod_mac


def test_error_object_has_the_spec_fields() -> None:
    e = CniError(errors.TRY_AGAIN_LATER, "node-loader is not reachable", "ENOENT")
    assert e.to_json("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 11,
        "msg": "node-loader is not reachable",
        "details": "ENOENT",
    }
    assert str(e) == "node-loader is not reachable"


def test_error_survives_pickling() -> None:
    e = pickle.loads(pickle.dumps(CniError(errors.IPAM_EXHAUSTED, "full", "253 allocated")))
    assert (e.code, e.msg, e.details) == (100, "full", "253 allocated")


def test_spec_codes_and_plugin_codes() -> None:
    assert (errors.INCOMPATIBLE_VERSION, errors.UNSUPPORTED_FIELD, errors.UNKNOWN_CONTAINER) == (
        1,
        2,
        3,
    )
    assert (errors.INVALID_ENV, errors.IO_FAILURE, errors.DECODE_FAILURE) == (4, 5, 6)
    assert (errors.INVALID_CONFIG, errors.TRY_AGAIN_LATER, errors.NOT_AVAILABLE) == (7, 11, 50)
    plugin = [
        errors.IPAM_EXHAUSTED,
        errors.NODE_LOADER_FAILED,
        errors.LINK_FAILED,
        errors.CHECK_FAILED,
        errors.IFNAME_IN_USE,
        errors.ALREADY_ATTACHED,
        errors.INTERNAL,
    ]
    assert all(code >= 100 for code in plugin)
    assert len(set(plugin)) == len(plugin)
    # Every code is in the module's table, which is the documentation runtimes' users read.
    for code in plugin:
        assert f"| {code}  |" in (errors.__doc__ or "")


def test_host_ifname_is_short_stable_and_ours() -> None:
    # sha256("abc") = ba7816bf8f01cfea...
    assert host_ifname("abc") == "wrba7816bf8f0"
    name = host_ifname("f" * 64)
    assert len(name) <= 15
    assert HOST_IFNAME.fullmatch(name)
    assert host_ifname("a") != host_ifname("b")
    assert not HOST_IFNAME.fullmatch("wrXYZ")


def test_macs_are_locally_administered_unicast_and_distinct() -> None:
    for cid in ("abc", "def", "0" * 64):
        for mac in (pod_mac(cid), host_mac(cid)):
            assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
            first = int(mac[:2], 16)
            assert first & 0b10, "locally administered"
            assert not first & 0b1, "unicast"
        assert pod_mac(cid) != host_mac(cid)
        assert pod_mac(cid) == pod_mac(cid)
    assert pod_mac("abc") != pod_mac("abd")
