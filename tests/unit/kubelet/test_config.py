"""Flags, kubeconfig reading and sandbox records."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from weir_local.kubelet import kubeconfig
from weir_local.kubelet.config import parse_args
from weir_local.kubelet.core import Stage
from weir_local.kubelet.sandbox import RecordStore, SandboxRecord

FLAGS = [
    "--node-name=n1",
    "--kubeconfig=/k",
    "--node-netns=c-n1",
    "--netns-prefix=c-n1-pod",
    "--internal-ip=172.18.0.2",
    "--pod-cidr=10.244.1.0/24",
    "--cni-bin-dir=/a:/b",
    "--cni-conf-dir=/etc/cni/net.d",
    "--state-dir=/s",
]


def test_flags() -> None:
    cfg = parse_args([*FLAGS, "--health-port=9", "--log-level=debug"])
    assert cfg.node_name == "n1" and cfg.health_port == 9 and cfg.log_level == "debug"
    assert cfg.cni_bin_dirs == (Path("/a"), Path("/b"))
    assert cfg.node_netns_path == Path("/run/netns/c-n1")
    assert cfg.sandbox_dir == Path("/s/sandboxes")


@pytest.mark.parametrize(
    "bad",
    ["--node-name=N_1", "--pod-cidr=10.244.1.1/24", "--internal-ip=x", "--node-netns=a/b"],
)
def test_bad_flags_are_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        parse_args([*FLAGS, bad])


def kubeconfig_text(cluster: str, user: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n{cluster}"
        f"users:\n- name: u\n  user:\n{user}"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
    )


def test_kubeconfig_plain_http_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("    server: http://127.0.0.1:6443\n", "    {}\n"))
    settings = kubeconfig.load(path)
    assert settings.server == "http://127.0.0.1:6443"
    assert settings.headers == {} and settings.ssl_context is None
    (tmp_path / "token").write_text("s3cret\n")
    path.write_text(
        kubeconfig_text("    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\n",
                        "    tokenFile: token\n")
    )  # fmt: skip
    settings = kubeconfig.load(path)
    assert settings.headers == {"Authorization": "Bearer s3cret"}
    assert settings.ssl_context is not None and not settings.ssl_context.check_hostname


def test_kubeconfig_errors(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: nope\ncontexts: []\n")
    with pytest.raises(kubeconfig.KubeconfigError, match="context 'nope' not found"):
        kubeconfig.load(path)
    with pytest.raises(kubeconfig.KubeconfigError):
        kubeconfig.load(tmp_path / "missing")
    data = base64.b64encode(b"not a certificate").decode()
    path.write_text(
        kubeconfig_text(
            f"    server: https://x\n    certificate-authority-data: {data}\n", "    {}\n"
        )
    )
    with pytest.raises(Exception):  # noqa: B017 - ssl's own error for a bad CA bundle
        kubeconfig.load(path)


def test_records_round_trip_and_survive_damage(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "sandboxes")
    assert store.load() == {}
    rec = SandboxRecord(
        uid="u1",
        namespace="ns",
        name="p",
        netns="pre-u1",
        created=1.5,
        stage=Stage.READY,
        network={"name": "weir"},
        result={"ips": [{"address": "10.244.1.2/32"}]},
        ready_at=2.0,
    )
    store.save(rec)
    loaded = store.load()
    assert loaded == {"u1": rec} and loaded["u1"].pod_ips == ("10.244.1.2",)
    (tmp_path / "sandboxes" / "u2.json").write_text("{garbage")
    (tmp_path / "sandboxes" / "u3.json").write_bytes(
        SandboxRecord(uid="other", namespace="", name="", netns="", created=0).to_json()
    )
    loaded = store.load()
    assert loaded["u2"].stage is Stage.ADDING  # unreadable: rebuilt or torn down
    assert "u3" not in loaded
    store.remove("u1")
    store.remove("u1")
    assert "u1" not in store.load()
