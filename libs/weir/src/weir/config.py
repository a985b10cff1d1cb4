"""Layered configuration: defaults < config file < environment < flags.

Each service declares its settings as one frozen dataclass (subclassing `ServiceConfig`); this
module derives the rest from it: a flag `--nats-url`, an environment variable `WEIR_NATS_URL`,
a key `nats_url` (or `nats-url`) in the YAML file given by `--config` or `WEIR_CONFIG` — in a
cluster, a ConfigMap mounted as a file or as a directory holding `config.yaml`. Every value is
type-checked where it enters, and `--print-config` shows the effective value of every setting
with the layer it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

C = TypeVar("C", bound="ServiceConfig")
ENV_PREFIX = "WEIR_"


def setting(default: Any, help: str) -> Any:
    """A config field with its help text (shown by --help and --print-config)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Settings every Weir service has."""

    nats_url: str = setting(
        "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated for a cluster"
    )
    health_host: str = setting("127.0.0.1", "address of the /healthz, /readyz, /metrics server")
    health_port: int = setting(9876, "port of the health and metrics server (0: pick one)")
    log_level: str = setting("info", "debug, info, warning or error")
    log_format: str = setting("json", "json (one object per line) or text")
    kv_replicas: int = setting(1, "replicas for KV buckets this service creates")


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the setting and its source."""


@dataclass(frozen=True)
class Loaded(typing.Generic[C]):
    config: C
    sources: dict[str, str]  # setting -> "default" | "file PATH" | "env NAME" | "flag --name"
    print_config: bool


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _is_sequence(tp: Any) -> bool:
    return typing.get_origin(tp) in (tuple, list)


def _is_bool(tp: Any) -> bool:
    return tp is bool


def _coerce(name: str, raw: Any, tp: Any, source: str) -> Any:
    """One setting's value as its declared type; strings from env/flags are parsed."""
    if isinstance(raw, str) and _is_sequence(tp):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, str) and _is_bool(tp):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            raw = True
        elif lowered in ("0", "false", "no", "off"):
            raw = False
    try:
        return msgspec.convert(raw, type=tp, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{name}: {e} (from {source})") from None


def _fields(cls: type[C]) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _read_file(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_parser(cls: type[ServiceConfig], prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config", help=f"YAML settings file or ConfigMap directory (env {ENV_PREFIX}CONFIG)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration with each value's source, and exit",
    )
    for name, (f, tp) in _fields(cls).items():
        help_text = f"{f.metadata.get('help', '')} (env {_env(name)}; default {f.default!r})"
        if _is_bool(tp):
            parser.add_argument(
                _flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(_flag(name), dest=name, default=argparse.SUPPRESS, help=help_text)
    return parser


def load(
    cls: type[C],
    *,
    prog: str,
    description: str = "",
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Loaded[C]:
    """Parse flags, read the file and environment, and layer them over the defaults."""
    environ = os.environ if environ is None else environ
    args = vars(build_parser(cls, prog, description).parse_args(argv))
    fields = _fields(cls)
    values: dict[str, Any] = {}
    sources = {name: "default" for name in fields}

    config_path = args.pop("config", None) or environ.get(f"{ENV_PREFIX}CONFIG")
    print_config = bool(args.pop("print_config", False))
    if config_path:
        for name, raw in _read_file(Path(config_path)).items():
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise ConfigError(f"unknown setting {name!r} in {config_path} (known: {known})")
            source = f"file {config_path}"
            values[name] = _coerce(name, raw, fields[name][1], source)
            sources[name] = source
    for name, (_, tp) in fields.items():
        env_name = _env(name)
        if env_name in environ:
            source = f"env {env_name}"
            values[name] = _coerce(name, environ[env_name], tp, source)
            sources[name] = source
    for name, raw in args.items():
        source = f"flag {_flag(name)}"
        values[name] = _coerce(name, raw, fields[name][1], source)
        sources[name] = source
    return Loaded(cls(**values), sources, print_config)


def render(loaded: Loaded[Any], prog: str) -> str:
    """The effective configuration as YAML, each line commented with its source."""
    lines = [f"# effective configuration of {prog} (defaults < file < environment < flags)"]
    for f in dataclasses.fields(loaded.config):
        value = getattr(loaded.config, f.name)
        if isinstance(value, tuple):
            value = list(value)
        dumped = yaml.safe_dump(value, default_flow_style=True, width=1000)
        dumped = dumped.removesuffix("...\n").strip()
        lines.append(f"{f.name}: {dumped}  # {loaded.sources[f.name]}")
    return "\n".join(lines) + "\n"
