"""Weir's CNI plugin, executed by a container runtime as the CNI spec (1.0) describes.

The command comes in CNI_COMMAND, the network configuration on stdin; the result or a CNI error
object goes to stdout. VERSION is answered now; ADD, CHECK and DEL (veth, IPAM and endpoint
registration with node-loader) arrive with the local-nodes work, and until then they fail with
a CNI error that says so rather than pretending to have wired a pod.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CNI_VERSION = "1.0.0"

# CNI spec error codes; 100 and up are the plugin's own.
ERR_INCOMPATIBLE_VERSION = 1
ERR_INVALID_ENV = 4
ERR_NOT_BUILT = 100


def error(code: int, msg: str, details: str = "") -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "code": code, "msg": msg, "details": details}


def handle(environ: Mapping[str, str], stdin: str) -> tuple[int, dict[str, Any]]:
    """(exit code, JSON object for stdout) for one invocation."""
    command = environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        return 0, {"cniVersion": CNI_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}
    if command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        return 1, error(
            ERR_NOT_BUILT,
            f"weir-cni {command} is not available yet",
            "pod wiring (veth, IPAM, node-loader registration) arrives with the local-nodes work",
        )
    return 1, error(ERR_INVALID_ENV, f"unknown CNI_COMMAND {command!r}")


def run(environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    code, out = handle(environ, stdin.read() if environ.get("CNI_COMMAND") != "VERSION" else "")
    json.dump(out, stdout)
    stdout.write("\n")
    return code


def main() -> None:
    raise SystemExit(run(os.environ, sys.stdin, sys.stdout))
