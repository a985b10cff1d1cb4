"""CNI as a runtime drives it: finding the network, plugin input and environment, output
parsing, and the ADD/CHECK/DEL order of a configuration list (with the executions faked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from weir_local.kubelet.cni import (
    TRY_AGAIN_LATER,
    Attachment,
    CniError,
    CniRunner,
    NetworkConfig,
    environment,
    find_network,
    parse_network,
    parse_output,
    plugin_stdin,
    result_ips,
)

ATT = Attachment(container_id="u1", netns="/run/netns/x-u1", namespace="ns", name="p", uid="u1")


def write(d: Path, name: str, obj: Any) -> None:
    (d / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))


def conflist(name: str = "weir", *types: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [{"type": t} for t in types or ["a"]]}


def test_find_network_takes_the_lexically_first_list_naming_it(tmp_path: Path) -> None:
    assert find_network(tmp_path, "weir")[0] is None
    write(tmp_path, "01-other.conflist", conflist("other"))
    write(tmp_path, "02-broken.conflist", "{not json")
    write(tmp_path, "10-weir.conflist", conflist("weir", "second"))
    write(tmp_path, "05-weir.conflist", conflist("weir", "first"))
    write(tmp_path, "00-weir.conf", conflist("weir", "not-a-list"))  # only *.conflist
    net, problems = find_network(tmp_path, "weir")
    assert net is not None and net.path.endswith("05-weir.conflist")
    assert net.plugins == [{"type": "first"}]
    assert any("02-broken" in p for p in problems)


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "weir", "plugins": []},
        {"name": "weir", "plugins": [{"nope": 1}]},
        {"name": "weir", "plugins": [{"type": "../evil"}]},
        {"plugins": [{"type": "a"}]},
        {"name": "weir", "cniVersion": "9.9.9", "plugins": [{"type": "a"}]},
    ],
)
def test_invalid_lists_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_network("x", json.dumps(raw).encode())


def test_plugin_input_and_environment() -> None:
    net = NetworkConfig("p", {"cniVersion": "1.0.0", "name": "weir", "plugins": [{"type": "a"}]})
    stdin = json.loads(plugin_stdin(net, {"type": "a", "mtu": 1400}, {"ips": []}))
    assert stdin == {
        "type": "a",
        "mtu": 1400,
        "name": "weir",
        "cniVersion": "1.0.0",
        "prevResult": {"ips": []},
    }
    assert "prevResult" not in json.loads(plugin_stdin(net, {"type": "a"}, None))
    env = environment("ADD", ATT, [Path("/opt/cni/bin"), Path("/x")], {"PATH": "/usr/bin"})
    assert env == {
        "PATH": "/usr/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "u1",
        "CNI_NETNS": "/run/netns/x-u1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin:/x",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;"
        "K8S_POD_INFRA_CONTAINER_ID=u1;K8S_POD_UID=u1",
    }


def test_output_parsing() -> None:
    assert parse_output("a", "ADD", 0, b'{"ips": []}', b"") == {"ips": []}
    assert parse_output("a", "DEL", 0, b"", b"") == {}
    with pytest.raises(CniError) as e:
        parse_output("a", "ADD", 1, b'{"code": 11, "msg": "busy", "details": "d"}', b"")
    assert (e.value.code, e.value.msg, e.value.details) == (11, "busy", "d")
    assert str(e.value) == "plugin type='a': busy; d"
    with pytest.raises(CniError) as e:
        parse_output("a", "ADD", 2, b"", b"Traceback: boom")
    assert e.value.details == "Traceback: boom"
    with pytest.raises(CniError):
        parse_output("a", "ADD", 0, b"", b"")  # ADD must return a result
    with pytest.raises(CniError):
        parse_output("a", "ADD", 0, b"[1]", b"")


def test_result_ips() -> None:
    result = {"ips": [{"address": "fd00::5/128"}, {"address": "10.244.1.5/32"}]}
    assert result_ips(result) == ["10.244.1.5", "fd00::5"]
    assert result_ips({}) == []


class FakeRunner(CniRunner):
    """Records executions instead of running plugins; answers from a script."""

    def __init__(self, answers: dict[tuple[str, str], list[Any]] | None = None) -> None:
        super().__init__([Path("/bin")], Path("/run/netns/node"), limit=2, timeout=5)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.answers = answers or {}

    async def _exec(
        self, ptype: str, command: str, env: dict[str, str], stdin: bytes
    ) -> dict[str, Any]:
        self.calls.append((command, ptype, json.loads(stdin)))
        queue = self.answers.get((command, ptype))
        answer = queue.pop(0) if queue else {"from": ptype}
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


def chain() -> NetworkConfig:
    return NetworkConfig("p", conflist("weir", "first", "second"))


async def test_add_chains_results_check_in_order_del_in_reverse() -> None:
    runner = FakeRunner()
    result = await runner.add(chain(), ATT)
    assert result == {"from": "second"}
    assert [(c, t, "prevResult" in s) for c, t, s in runner.calls] == [
        ("ADD", "first", False),
        ("ADD", "second", True),
    ]
    assert runner.calls[1][2]["prevResult"] == {"from": "first"}
    runner.calls.clear()
    await runner.check(chain(), ATT, result)
    await runner.delete(chain(), ATT, result)
    assert [(c, t, s["prevResult"]) for c, t, s in runner.calls] == [
        ("CHECK", "first", result),
        ("CHECK", "second", result),
        ("DEL", "second", result),
        ("DEL", "first", result),
    ]
    runner.calls.clear()
    await runner.delete(chain(), ATT, None)  # an ADD whose outcome is unknown
    assert all("prevResult" not in s for _, _, s in runner.calls)


async def test_check_is_skipped_when_disabled() -> None:
    runner = FakeRunner()
    raw = {**conflist("weir", "a"), "disableCheck": True}
    await runner.check(NetworkConfig("p", raw), ATT, {})
    assert runner.calls == []


async def test_try_again_later_is_retried_other_errors_are_not() -> None:
    busy = CniError(TRY_AGAIN_LATER, "busy")
    runner = FakeRunner({("ADD", "a"): [busy, busy, {"ok": 1}]})
    net = NetworkConfig("p", conflist("weir", "a"))
    assert await runner.add(net, ATT) == {"ok": 1}
    assert len(runner.calls) == 3
    runner = FakeRunner({("ADD", "a"): [CniError(7, "bad config"), {"ok": 1}]})
    with pytest.raises(CniError) as e:
        await runner.add(net, ATT)
    assert e.value.code == 7 and len(runner.calls) == 1
    runner = FakeRunner({("ADD", "a"): [busy] * 10})
    runner.retries = 2
    with pytest.raises(CniError):
        await runner.add(net, ATT)
    assert len(runner.calls) == 3


def test_missing_plugin_is_named_like_libcni(tmp_path: Path) -> None:
    runner = CniRunner([tmp_path], Path("/nonexistent"), limit=1, timeout=1)
    with pytest.raises(CniError) as e:
        runner.find("weir-cni")
    assert e.value.msg == f'failed to find plugin "weir-cni" in path [{tmp_path}]'
    plugin = tmp_path / "weir-cni"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    assert runner.find("weir-cni") == plugin
