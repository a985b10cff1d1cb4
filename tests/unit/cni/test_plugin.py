"""The plugin's dispatch: what goes to stdout and the exit code, for each command and failure."""

from __future__ import annotations

import io
import json
import signal
from typing import Any

import pytest
from weir_cni import commands, plugin
from weir_cni.errors import CniError
from weir_cni.invocation import SUPPORTED_VERSIONS, Invocation

NETCONF = {
    "cniVersion": "0.4.0",
    "name": "weir",
    "type": "weir-cni",
    "nodeLoaderSocket": "/nonexistent/nl.sock",
    "ipam": {"subnet": "10.244.1.0/24", "dataDir": "/nonexistent/ipam"},
}
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/run/netns/p",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
}


def test_version_lists_what_we_speak() -> None:
    code, out = plugin.handle({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "1.0.0"}')
    assert code == 0
    assert out == {"cniVersion": "1.0.0", "supportedVersions": list(SUPPORTED_VERSIONS)}
    assert "1.0.0" in SUPPORTED_VERSIONS


def test_version_without_stdin() -> None:
    stdout = io.StringIO()
    assert plugin.run({"CNI_COMMAND": "VERSION"}, io.StringIO(""), stdout) == 0
    assert json.loads(stdout.getvalue())["supportedVersions"] == list(SUPPORTED_VERSIONS)


def test_errors_are_objects_in_the_configs_version() -> None:
    code, out = plugin.handle({**ENV, "CNI_IFNAME": ""}, json.dumps(NETCONF))
    assert code == 1
    assert out is not None
    assert out["cniVersion"] == "0.4.0"
    assert out["code"] == 4
    assert set(out) == {"cniVersion", "code", "msg", "details"}


def test_undecodable_stdin_is_code_6_in_the_default_version() -> None:
    stdout = io.StringIO()
    assert plugin.run(ENV, io.StringIO("{{{"), stdout) == 1
    out = json.loads(stdout.getvalue())
    assert (out["code"], out["cniVersion"]) == (6, "1.0.0")


def test_add_prints_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Invocation] = []

    def fake_add(inv: Invocation) -> dict[str, Any]:
        seen.append(inv)
        return {"cniVersion": inv.cni_version, "ips": []}

    monkeypatch.setattr(commands, "add", fake_add)
    stdout = io.StringIO()
    assert plugin.run(ENV, io.StringIO(json.dumps(NETCONF)), stdout) == 0
    assert json.loads(stdout.getvalue()) == {"cniVersion": "0.4.0", "ips": []}
    assert seen[0].container_id == "c1"


@pytest.mark.parametrize("command", ["DEL", "CHECK"])
def test_del_and_check_print_nothing(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setattr(commands, "delete", lambda inv: None)
    monkeypatch.setattr(commands, "check", lambda inv: None)
    stdout = io.StringIO()
    conf = {**NETCONF, "prevResult": {"ips": []}}
    assert plugin.run({**ENV, "CNI_COMMAND": command}, io.StringIO(json.dumps(conf)), stdout) == 0
    assert stdout.getvalue() == ""


def test_command_errors_are_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(inv: Invocation) -> None:
        raise CniError(101, "node-loader refused endpoint c1 (HTTP 500)", "EPERM")

    monkeypatch.setattr(commands, "delete", fail)
    code, out = plugin.handle({**ENV, "CNI_COMMAND": "DEL"}, json.dumps(NETCONF))
    assert code == 1
    assert out == {
        "cniVersion": "0.4.0",
        "code": 101,
        "msg": "node-loader refused endpoint c1 (HTTP 500)",
        "details": "EPERM",
    }


def test_a_bug_is_still_a_cni_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(inv: Invocation) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(commands, "delete", boom)
    code, out = plugin.handle({**ENV, "CNI_COMMAND": "DEL"}, json.dumps(NETCONF))
    assert code == 1
    assert out is not None
    assert out["code"] == 199
    assert "surprise" in out["details"]


def test_sigterm_becomes_a_cni_error_so_rollback_runs() -> None:
    with pytest.raises(CniError) as info:
        plugin._on_sigterm(signal.SIGTERM, None)
    assert info.value.code == 11
