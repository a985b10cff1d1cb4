"""Config layering: defaults < file < environment < flags, each value typed and traced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from weir.config import ConfigError, ServiceConfig, load, render, setting


@dataclass(frozen=True, kw_only=True)
class DemoConfig(ServiceConfig):
    kinds: tuple[str, ...] = setting(("Pod", "Node"), "kinds")
    ratio: float = setting(0.5, "a ratio")
    enabled: bool = setting(False, "a switch")


def test_defaults_when_nothing_is_given() -> None:
    loaded = load(DemoConfig, prog="t", argv=[], environ={})
    assert loaded.config == DemoConfig()
    assert set(loaded.sources.values()) == {"default"}
    assert not loaded.print_config


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("health-port: 1000\nlog_level: debug\nratio: 0.25\nkinds: [Pod]\n")
    loaded = load(
        DemoConfig,
        prog="t",
        argv=["--config", str(file), "--health-port", "3000"],
        environ={
            "WEIR_HEALTH_PORT": "2000",
            "WEIR_LOG_LEVEL": "warning",
            "WEIR_KINDS": "Pod, Service",
            "WEIR_ENABLED": "yes",
        },
    )
    c = loaded.config
    assert c.health_port == 3000 and loaded.sources["health_port"] == "flag --health-port"
    assert c.log_level == "warning" and loaded.sources["log_level"] == "env WEIR_LOG_LEVEL"
    assert c.ratio == 0.25 and loaded.sources["ratio"] == f"file {file}"
    assert c.kinds == ("Pod", "Service")
    assert c.enabled is True
    assert c.nats_url == "nats://127.0.0.1:4222" and loaded.sources["nats_url"] == "default"


def test_config_file_from_environment_and_configmap_directory(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("nats_url: nats://nats.weir:4222\n")
    loaded = load(DemoConfig, prog="t", argv=[], environ={"WEIR_CONFIG": str(tmp_path)})
    assert loaded.config.nats_url == "nats://nats.weir:4222"


def test_boolean_flags_both_ways() -> None:
    assert load(DemoConfig, prog="t", argv=["--enabled"], environ={}).config.enabled
    assert not load(
        DemoConfig, prog="t", argv=["--no-enabled"], environ={"WEIR_ENABLED": "true"}
    ).config.enabled


@pytest.mark.parametrize(
    ("argv", "environ", "file_text", "message"),
    [
        ([], {"WEIR_HEALTH_PORT": "http"}, None, "health_port.*env WEIR_HEALTH_PORT"),
        (["--ratio", "lots"], {}, None, "ratio.*flag --ratio"),
        ([], {}, "colour: blue\n", "unknown setting 'colour'"),
        ([], {}, "health_port: [1]\n", "health_port.*file"),
        ([], {}, "- a list\n", "must hold a mapping"),
        ([], {}, "a: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_values_name_the_setting_and_source(
    tmp_path: Path, argv: list[str], environ: dict[str, str], file_text: str | None, message: str
) -> None:
    if file_text is not None:
        path = tmp_path / "c.yaml"
        path.write_text(file_text)
        argv = [*argv, "--config", str(path)]
    with pytest.raises(ConfigError, match=message):
        load(DemoConfig, prog="t", argv=argv, environ=environ)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(DemoConfig, prog="t", argv=["--config", str(tmp_path / "nope.yaml")], environ={})


def test_print_config_shows_every_value_with_its_source() -> None:
    loaded = load(
        DemoConfig,
        prog="weir-demo",
        argv=["--print-config", "--ratio", "2"],
        environ={"WEIR_NATS_URL": "nats://a:1,nats://b:2"},
    )
    assert loaded.print_config
    text = render(loaded, "weir-demo")
    assert "ratio: 2.0  # flag --ratio" in text
    assert "nats_url: nats://a:1,nats://b:2  # env WEIR_NATS_URL" in text
    assert "kinds: [Pod, Node]  # default" in text
    assert text.count("\n") == 1 + len(loaded.sources)
