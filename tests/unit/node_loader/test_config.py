"""node-loader's settings: layered like every service's, checked before anything starts."""

from __future__ import annotations

import pytest
from weir.config import ConfigError, load
from weir_node_loader.config import NodeLoaderConfig


def test_the_local_cluster_environment_is_understood() -> None:
    cfg = load(
        NodeLoaderConfig,
        prog="weir-node-loader",
        argv=[],
        environ={
            "WEIR_NODE_NAME": "node-1",
            "WEIR_NETNS": "wab12c-node-1",
            "WEIR_BPF_ROOT": "/sys/fs/bpf/weir/wab12c",
            "WEIR_MTU": "1450",
        },
    ).config
    cfg.check()
    assert str(cfg.pin_dir) == "/sys/fs/bpf/weir/wab12c/node-1"
    assert cfg.mtu == 1450 and cfg.netns == "wab12c-node-1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "node_name is required"),
        ({"WEIR_NODE_NAME": "Node_1"}, "not a Kubernetes node name"),
        ({"WEIR_NODE_NAME": "n1", "WEIR_MTU": "100"}, "mtu"),
        ({"WEIR_NODE_NAME": "n1", "WEIR_POLICY_WAIT_SECONDS": "0"}, "policy_wait_seconds"),
        ({"WEIR_NODE_NAME": "n1", "WEIR_EVENTS_BURST": "0"}, "events_burst"),
        ({"WEIR_NODE_NAME": "n1", "WEIR_CT_OTHER_TIMEOUT": "-1"}, "conntrack timeouts"),
    ],
)
def test_unusable_settings_are_refused(env: dict[str, str], message: str) -> None:
    cfg = load(NodeLoaderConfig, prog="weir-node-loader", argv=[], environ=env).config
    with pytest.raises(ConfigError, match=message):
        cfg.check()


def test_policy_is_required_by_default_and_events_are_limited() -> None:
    cfg = load(NodeLoaderConfig, prog="weir-node-loader", argv=[], environ={"WEIR_NODE_NAME": "n"})
    c = cfg.config
    assert c.require_policy and c.policy_wait_seconds == 10.0
    assert c.events_per_second > 0 and not c.events_unenforced
    off = load(
        NodeLoaderConfig,
        prog="weir-node-loader",
        argv=["--no-require-policy"],
        environ={"WEIR_NODE_NAME": "n"},
    ).config
    assert off.require_policy is False
