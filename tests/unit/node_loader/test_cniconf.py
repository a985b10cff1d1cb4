"""The node's conflist: written atomically, rewritten only when it changes."""

from __future__ import annotations

import json
from pathlib import Path

from weir.cni_config import PluginConfig, parse_plugin_config
from weir_node_loader.cniconf import render, write


def config(subnet: str = "10.244.1.0/24") -> PluginConfig:
    return PluginConfig(
        node_loader_socket="/run/weir/nl.sock", subnet=subnet, ipam_data_dir="/var/lib/ipam"
    )


def test_write_creates_the_directory_and_only_rewrites_on_change(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    assert write(conf_dir, render(config())) is True
    path = conf_dir / "05-weir.conflist"
    inode = path.stat().st_ino
    assert write(conf_dir, render(config())) is False
    assert path.stat().st_ino == inode
    assert write(conf_dir, render(config("10.244.7.0/24"))) is True
    assert path.stat().st_ino != inode  # a new file renamed into place, never edited in place
    assert sorted(p.name for p in conf_dir.iterdir()) == ["05-weir.conflist"]


def test_the_conflist_is_what_weir_cni_reads_back(tmp_path: Path) -> None:
    write(tmp_path, render(config()))
    doc = json.loads((tmp_path / "05-weir.conflist").read_text())
    assert doc["name"] == "weir" and doc["plugins"][0]["type"] == "weir-cni"
    assert parse_plugin_config(doc["plugins"][0]) == config()
