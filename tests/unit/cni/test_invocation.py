"""weir-cni's reading of the CNI environment and network config, and the codes it fails with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from weir_cni import errors
from weir_cni.errors import CniError
from weir_cni.invocation import (
    SUPPORTED_VERSIONS,
    Attachment,
    check_ifname,
    error_version,
    parse,
    parse_cni_args,
)

NETCONF: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "weir",
    "type": "weir-cni",
    "nodeLoaderSocket": "/run/weir/nl.sock",
    "mtu": 1450,
    "gateway": "169.254.1.1",
    "ipam": {"subnet": "10.244.1.0/24", "dataDir": "/var/lib/weir/ipam"},
}
ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_UID=u1"


def env(command: str = "ADD", **more: str) -> dict[str, str]:
    out = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/run/netns/pod",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": ARGS,
    }
    out.update(more)
    return {k: v for k, v in out.items() if v is not None}


def conf(**changes: Any) -> str:
    doc = {**NETCONF, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def code_of(environ: dict[str, str], stdin: str) -> int:
    with pytest.raises(CniError) as info:
        parse(environ, stdin)
    return info.value.code


def test_add_reads_everything() -> None:
    inv = parse(env(), conf())
    assert inv.command == "ADD"
    assert inv.cni_version == "1.0.0"
    assert inv.network == "weir"
    assert (inv.container_id, inv.netns, inv.ifname) == ("abc123", "/run/netns/pod", "eth0")
    assert inv.args["K8S_POD_NAMESPACE"] == "ns1"
    assert inv.args["K8S_POD_NAME"] == "web-0"
    assert inv.plugin.subnet == "10.244.1.0/24"
    assert inv.plugin.mtu == 1450
    assert inv.plugin.node_loader_socket == "/run/weir/nl.sock"
    assert inv.prev_result is None


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("ADD", "CNI_PATH"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
        ("CHECK", "CNI_NETNS"),
    ],
)
def test_missing_environment_is_code_4(command: str, missing: str) -> None:
    environ = env(command)
    del environ[missing]
    stdin = conf(prevResult={"ips": []}) if command == "CHECK" else conf()
    assert code_of(environ, stdin) == errors.INVALID_ENV


def test_del_needs_no_netns() -> None:
    environ = env("DEL")
    del environ["CNI_NETNS"]
    assert parse(environ, conf()).netns == ""


@pytest.mark.parametrize("command", ["", "FROB", "add"])
def test_unknown_command_is_code_4(command: str) -> None:
    assert code_of(env(command), conf()) == errors.INVALID_ENV


@pytest.mark.parametrize("cid", ["-abc", "a b", "a/b", "ä", "abc;rm"])
def test_bad_container_id_is_code_4(cid: str) -> None:
    assert code_of(env(CNI_CONTAINERID=cid), conf()) == errors.INVALID_ENV


@pytest.mark.parametrize("name", [".", "..", "a" * 16, "eth 0", "a/b", "a:b", "tab\t"])
def test_bad_ifname_is_rejected(name: str) -> None:
    with pytest.raises(CniError) as info:
        check_ifname(name)
    assert info.value.code == errors.INVALID_ENV


def test_fifteen_byte_ifname_is_fine() -> None:
    check_ifname("a" * 15)


def test_cni_args() -> None:
    assert parse_cni_args("") == {}
    assert parse_cni_args("A=1;B=;C=x=y") == {"A": "1", "B": "", "C": "x=y"}
    with pytest.raises(CniError) as info:
        parse_cni_args("A=1;junk")
    assert info.value.code == errors.INVALID_ENV


@pytest.mark.parametrize("missing", ["K8S_POD_NAMESPACE", "K8S_POD_NAME"])
def test_add_needs_the_pod_in_cni_args(missing: str) -> None:
    args = ";".join(p for p in ARGS.split(";") if not p.startswith(missing + "="))
    assert code_of(env(CNI_ARGS=args), conf()) == errors.INVALID_ENV


def test_del_does_not_need_the_pod() -> None:
    assert parse(env("DEL", CNI_ARGS=""), conf()).command == "DEL"


def test_undecodable_config_is_code_6() -> None:
    assert code_of(env(), "{not json") == errors.DECODE_FAILURE
    assert code_of(env(), "") == errors.DECODE_FAILURE


def test_non_object_config_is_code_7() -> None:
    assert code_of(env(), "[1, 2]") == errors.INVALID_CONFIG


@pytest.mark.parametrize(
    "changes",
    [
        {"cniVersion": None},
        {"name": None},
        {"name": "bad name"},
        {"type": "ptp"},
        {"type": None},
        {"ipam": None},
        {"ipam": {"subnet": "10.244.1.0/24"}},
        {"ipam": {"subnet": "10.244.1.1/24", "dataDir": "/x"}},
        {"ipam": {"subnet": "10.244.1.0/31", "dataDir": "/x"}},
        {"nodeLoaderSocket": ""},
        {"mtu": 10},
        {"mtu": "1500"},
        {"gateway": "not-an-ip"},
        {"prevResult": "nope"},
    ],
)
def test_invalid_config_is_code_7(changes: dict[str, Any]) -> None:
    assert code_of(env(), conf(**changes)) == errors.INVALID_CONFIG


def test_unsupported_version_is_code_1() -> None:
    assert code_of(env(), conf(cniVersion="2.0.0")) == errors.INCOMPATIBLE_VERSION
    assert code_of(env(), conf(cniVersion="0.2.0")) == errors.INCOMPATIBLE_VERSION


@pytest.mark.parametrize(
    ("command", "version"),
    [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "1.0.0"), ("GC", "0.4.0")],
)
def test_commands_newer_than_the_config_are_code_1(command: str, version: str) -> None:
    stdin = conf(cniVersion=version, prevResult={"ips": []})
    assert code_of(env(command), stdin) == errors.INCOMPATIBLE_VERSION


@pytest.mark.parametrize(
    ("ipam", "field"),
    [
        ({"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": "/x"}, "ipam.type"),
        ({"subnet": "fd00::/64", "dataDir": "/x"}, "ipam.subnet"),
    ],
)
def test_unsupported_fields_are_code_2_and_named(ipam: dict[str, str], field: str) -> None:
    with pytest.raises(CniError) as info:
        parse(env(), conf(ipam=ipam))
    assert info.value.code == errors.UNSUPPORTED_FIELD
    assert field in info.value.msg


def test_check_needs_prev_result() -> None:
    assert code_of(env("CHECK"), conf()) == errors.INVALID_CONFIG
    inv = parse(env("CHECK"), conf(prevResult={"ips": []}))
    assert inv.prev_result == {"ips": []}


def test_every_supported_version_parses() -> None:
    for version in SUPPORTED_VERSIONS:
        assert parse(env(), conf(cniVersion=version)).cni_version == version


def test_gc_reads_valid_attachments_under_either_key() -> None:
    listed = [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}]
    environ = {"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
        inv = parse(environ, conf(cniVersion="1.1.0", **{key: listed}))
        assert inv.valid_attachments == (Attachment("a", "eth0"), Attachment("b", "eth0"))
    assert code_of(environ, conf(cniVersion="1.1.0")) == errors.INVALID_CONFIG
    bad = conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": [{"ifname": "eth0"}]})
    assert code_of(environ, bad) == errors.INVALID_CONFIG


def test_status_needs_no_container() -> None:
    inv = parse({"CNI_COMMAND": "STATUS"}, conf(cniVersion="1.1.0"))
    assert inv.command == "STATUS"


def test_version_needs_nothing() -> None:
    assert parse({"CNI_COMMAND": "VERSION"}, "").cni_version == "1.0.0"
    assert parse({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "0.4.0"}').cni_version == "0.4.0"


def test_error_version_follows_the_config() -> None:
    assert error_version(conf(cniVersion="0.4.0")) == "0.4.0"
    assert error_version(conf(cniVersion="9.9.9")) == "1.0.0"
    assert error_version("garbage") == "1.0.0"
