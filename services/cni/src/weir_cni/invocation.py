"""One plugin invocation: the CNI_* environment and the network config on stdin, checked.

Everything the runtime hands over is validated here, before anything is made, so a bad
invocation fails with the spec's code (4 environment, 6 undecodable, 7 invalid config,
1 version, 2 unsupported field) and touches nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from weir.cni_config import PLUGIN_TYPE, PluginConfig, parse_plugin_config

from . import errors
from .errors import CniError

# Oldest first. 0.3.x results carry "version" on each IP; CHECK needs 0.4.0; GC and STATUS 1.1.0.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# The version errors are spoken in when the config's own cannot be used.
DEFAULT_VERSION = "1.0.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")

# Which CNI_* variables each command needs, as the spec (and libcni's skel) require them.
_REQUIRED_ENV = {
    "CNI_CONTAINERID": ("ADD", "DEL", "CHECK"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "DEL", "CHECK"),
    "CNI_PATH": ("ADD", "DEL", "CHECK", "GC"),
}
# Commands newer than the oldest version we speak.
_MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_NETWORK_NAME = _CONTAINER_ID
# The veth pair leaves no room for an address in a /31 or /32 once the first host is reserved.
_MAX_PREFIX = 30


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


class Attachment(NamedTuple):
    """One (container id, ifname) the runtime still uses, from GC's valid-attachments."""

    container_id: str
    ifname: str


class Invocation(NamedTuple):
    command: str
    cni_version: str
    network: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = _EMPTY
    config: PluginConfig | None = None
    netconf: Mapping[str, Any] = _EMPTY
    prev_result: Mapping[str, Any] | None = None
    valid_attachments: tuple[Attachment, ...] = ()

    @property
    def plugin(self) -> PluginConfig:
        assert self.config is not None, "VERSION has no plugin config"
        return self.config


def error_version(stdin: str) -> str:
    """The cniVersion to answer an error in: the config's, when we speak it."""
    try:
        raw = json.loads(stdin)
    except ValueError:
        return DEFAULT_VERSION
    version = raw.get("cniVersion") if isinstance(raw, dict) else None
    return version if version in SUPPORTED_VERSIONS else DEFAULT_VERSION


def parse_cni_args(raw: str) -> dict[str, str]:
    """CNI_ARGS: `K=V;K2=V2` (empty allowed). Unknown keys are kept and ignored by callers."""
    out: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(errors.INVALID_ENV, f"CNI_ARGS: {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def check_ifname(name: str) -> None:
    """Linux's rules for interface names, as the spec repeats them."""
    if (
        not name
        or name in (".", "..")
        or len(name.encode()) > 15
        or any(c in "/:" or c.isspace() for c in name)
    ):
        raise CniError(
            errors.INVALID_ENV,
            f"CNI_IFNAME {name!r} is not a valid interface name",
            "1 to 15 bytes, not . or .., without /, : or whitespace",
        )


def _environment(command: str, environ: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for var, commands in _REQUIRED_ENV.items():
        value = environ.get(var, "")
        if command in commands and not value:
            raise CniError(errors.INVALID_ENV, f"{var} is required for {command}")
        env[var] = value
    if command in ("ADD", "DEL", "CHECK"):
        if not _CONTAINER_ID.fullmatch(env["CNI_CONTAINERID"]):
            raise CniError(
                errors.INVALID_ENV,
                f"CNI_CONTAINERID {env['CNI_CONTAINERID']!r} is not a valid container id",
                "an alphanumeric, then alphanumerics, _, . or -",
            )
        check_ifname(env["CNI_IFNAME"])
    return env


def _netconf(stdin: str) -> dict[str, Any]:
    try:
        raw = json.loads(stdin)
    except ValueError as e:
        raise CniError(errors.DECODE_FAILURE, "the network config is not JSON", str(e)) from None
    if not isinstance(raw, dict):
        raise CniError(errors.INVALID_CONFIG, "the network config must be a JSON object")
    return raw


def _version(netconf: Mapping[str, Any], command: str) -> str:
    version = netconf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(errors.INVALID_CONFIG, "cniVersion is required")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            errors.INCOMPATIBLE_VERSION,
            f"cniVersion {version} is not supported",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    minimum = _MIN_VERSION.get(command)
    if minimum and not at_least(version, minimum):
        raise CniError(
            errors.INCOMPATIBLE_VERSION,
            f"cniVersion {version} does not allow {command}",
            f"{command} needs cniVersion {minimum} or later",
        )
    return version


def _plugin_config(netconf: Mapping[str, Any]) -> PluginConfig:
    plugin_type = netconf.get("type")
    if plugin_type != PLUGIN_TYPE:
        raise CniError(errors.INVALID_CONFIG, f"type must be {PLUGIN_TYPE!r}, not {plugin_type!r}")
    ipam = netconf.get("ipam")
    if isinstance(ipam, dict):
        # weir-cni allocates itself; a delegated IPAM plugin would be silently ignored.
        ipam_type = ipam.get("type")
        if ipam_type not in (None, "", PLUGIN_TYPE):
            raise CniError(
                errors.UNSUPPORTED_FIELD,
                f"unsupported field ipam.type={ipam_type!r}",
                "weir-cni allocates from ipam.subnet itself; remove ipam.type",
            )
        subnet = ipam.get("subnet")
        if isinstance(subnet, str) and ":" in subnet:
            raise CniError(
                errors.UNSUPPORTED_FIELD,
                f"unsupported field ipam.subnet={subnet!r}",
                "only IPv4 pod subnets are supported",
            )
    try:
        config = parse_plugin_config(dict(netconf))
    except ValueError as e:
        raise CniError(errors.INVALID_CONFIG, f"invalid network config: {e}") from None
    if ipaddress.IPv4Network(config.subnet).prefixlen > _MAX_PREFIX:
        raise CniError(
            errors.INVALID_CONFIG,
            f"ipam.subnet {config.subnet} has no assignable address",
            f"the network and first host are reserved: use a /{_MAX_PREFIX} or larger",
        )
    return config


def _valid_attachments(netconf: Mapping[str, Any]) -> tuple[Attachment, ...]:
    # libcni has sent both spellings (containernetworking/cni#1101); they carry the same list.
    raw = netconf.get("cni.dev/valid-attachments", netconf.get("cni.dev/attachments"))
    if raw is None:
        raise CniError(errors.INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
    if not isinstance(raw, list):
        raise CniError(errors.INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    out = []
    for item in raw:
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname", "") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not cid or not isinstance(ifname, str):
            raise CniError(
                errors.INVALID_CONFIG,
                "cni.dev/valid-attachments entries need containerID and ifname strings",
                json.dumps(item),
            )
        out.append(Attachment(cid, ifname))
    return tuple(out)


def parse(environ: Mapping[str, str], stdin: str) -> Invocation:
    """Check the whole invocation; raises CniError with the spec's code for what is wrong."""
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CniError(errors.INVALID_ENV, "CNI_COMMAND is required")
    if command not in COMMANDS:
        raise CniError(
            errors.INVALID_ENV,
            f"unknown CNI_COMMAND {command!r}",
            f"one of {', '.join(COMMANDS)}",
        )
    if command == "VERSION":
        # VERSION's stdin is optional ({"cniVersion": ...}); it only picks the answer's version.
        version = error_version(stdin) if stdin.strip() else DEFAULT_VERSION
        return Invocation(command=command, cni_version=version, network="")
    env = _environment(command, environ)
    netconf = _netconf(stdin)
    version = _version(netconf, command)
    name = netconf.get("name")
    if not isinstance(name, str) or not _NETWORK_NAME.fullmatch(name):
        raise CniError(errors.INVALID_CONFIG, f"name {name!r} is not a valid network name")
    config = _plugin_config(netconf)
    args = parse_cni_args(environ.get("CNI_ARGS", ""))
    if command == "ADD":
        for key in ("K8S_POD_NAMESPACE", "K8S_POD_NAME"):
            if not args.get(key):
                raise CniError(
                    errors.INVALID_ENV,
                    f"CNI_ARGS must carry {key}",
                    "node-loader registers every endpoint under its pod",
                )
    prev = netconf.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(errors.INVALID_CONFIG, "prevResult must be an object")
    if command == "CHECK" and prev is None:
        raise CniError(errors.INVALID_CONFIG, "CHECK needs prevResult")
    return Invocation(
        command=command,
        cni_version=version,
        network=name,
        container_id=env["CNI_CONTAINERID"],
        netns=env["CNI_NETNS"],
        ifname=env["CNI_IFNAME"],
        args=args,
        config=config,
        netconf=netconf,
        prev_result=prev,
        valid_attachments=_valid_attachments(netconf) if command == "GC" else (),
    )
