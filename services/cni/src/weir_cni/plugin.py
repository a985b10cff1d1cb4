"""Weir's CNI plugin, `weir-cni`, executed by a container runtime as CNI spec 1.0 (and 1.1) says.

The runtime passes the command and the container in CNI_* environment variables and the
network config on stdin. On success ADD prints its result, VERSION its versions, and DEL,
CHECK, GC and STATUS print nothing; every failure prints a CNI error object and exits 1.
See `commands.py` for what each command does and `errors.py` for the codes.

Start-up time is part of every pod's ADD, so only the standard library and weir's two
stdlib-only contract modules (`weir.endpoint_api`, `weir.cni_config`) are imported, and the
plugin's own records are NamedTuples: building a dataclass costs about 0.35 ms at import, a
NamedTuple 0.05 ms, and the interpreter's start-up is most of an ADD (~36 of ~45 ms).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any, TextIO

from . import commands, errors, invocation
from .errors import CniError
from .invocation import SUPPORTED_VERSIONS


def handle(environ: Mapping[str, str], stdin: str) -> tuple[int, dict[str, Any] | None]:
    """(exit code, JSON object for stdout or None) for one invocation."""
    try:
        inv = invocation.parse(environ, stdin)
    except CniError as e:
        return 1, e.to_json(invocation.error_version(stdin))
    try:
        if inv.command == "VERSION":
            return 0, {"cniVersion": inv.cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        if inv.command == "ADD":
            return 0, commands.add(inv)
        if inv.command == "DEL":
            commands.delete(inv)
        elif inv.command == "CHECK":
            commands.check(inv)
        elif inv.command == "GC":
            commands.gc(inv)
        elif inv.command == "STATUS":
            commands.status(inv)
        return 0, None
    except CniError as e:
        return 1, e.to_json(inv.cni_version)
    except Exception as e:
        # A bug must still reach the runtime as a CNI error, not as a bare traceback.
        import traceback

        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return 1, CniError(errors.INTERNAL, f"weir-cni {inv.command} failed", detail).to_json(
            inv.cni_version
        )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # An exception (not a bare exit) so ADD's rollback runs before the process ends.
    raise CniError(errors.TRY_AGAIN_LATER, "weir-cni was interrupted (SIGTERM); try again")


def run(environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    try:
        data = "" if stdin.isatty() else stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        error = CniError(errors.IO_FAILURE, "cannot read the network config from stdin", str(e))
        json.dump(error.to_json(invocation.DEFAULT_VERSION), stdout)
        stdout.write("\n")
        return 1
    code, out = handle(environ, data)
    if out is not None:
        json.dump(out, stdout)
        stdout.write("\n")
    return code


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    raise SystemExit(run(os.environ, sys.stdin, sys.stdout))
