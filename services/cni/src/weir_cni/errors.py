"""CNI error codes and the error a failed invocation prints.

Codes 1-11 are the CNI spec's well-known ones; 50 belongs to STATUS (spec 1.1); 100 and up
are weir-cni's own. Every failure path raises `CniError`; `plugin.py` turns it into the spec's
error object `{"cniVersion", "code", "msg", "details"}` on stdout and a non-zero exit.

| code | meaning |
| ---- | ------- |
| 1    | incompatible CNI version (config, prevResult, or the command needs a newer one) |
| 2    | unsupported field in the network config (the message names key and value) |
| 3    | container unknown: CNI_NETNS does not exist (nothing was made) |
| 4    | invalid or missing CNI_* environment variable, CNI_ARGS, container id or ifname |
| 5    | I/O failure: stdin, the IPAM data directory |
| 6    | decode failure: stdin is not JSON |
| 7    | invalid network config (missing or wrong fields, bad prevResult) |
| 11   | try again later: node-loader unreachable, not ready (503) or too slow; SIGTERM |
| 50   | STATUS: not ready to serve ADD (node-loader down, no free address) |
| 100  | IPAM exhausted: no free address left in ipam.subnet |
| 101  | node-loader refused or failed the endpoint (its message is in details) |
| 102  | the kernel refused a link, address or route change (iproute2's message in details) |
| 103  | CHECK: the pod's network differs from prevResult (what is missing in msg) |
| 104  | CNI_IFNAME is already in use inside the pod's network namespace |
| 105  | the container is already attached under another CNI_IFNAME (one attachment each) |
| 199  | an unexpected internal error (a bug in weir-cni; the exception is in details) |
"""

from __future__ import annotations

from typing import Any

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50

IPAM_EXHAUSTED = 100
NODE_LOADER_FAILED = 101
LINK_FAILED = 102
CHECK_FAILED = 103
IFNAME_IN_USE = 104
ALREADY_ATTACHED = 105
INTERNAL = 199


class CniError(Exception):
    """A failure the runtime should see as a CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        # All three in args, so the error survives pickling (a process pool, a test's worker).
        super().__init__(code, msg, details)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        return {
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        }

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return f"CniError({self.code}, {self.msg!r}, {self.details!r})"
