"""What an identity stands for, and the stable name of each label set.

A pod's identity is its security labels (churny labels dropped), its namespace's name and all of
its namespace's labels; a CIDR identity is one canonical prefix; a reserved identity is a name.
The KV name of a label set is the SHA-256 of its deterministic msgpack encoding (map keys
sorted, so equal sets always hash alike, on every replica and across restarts). Changing
IdentityLabels' fields changes every hash: that is a schema change, and the hash-stability test
pins the encoding so it cannot happen unnoticed.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from typing import NewType

import msgspec
from weir.identity import Reserved, security_labels
from weir.models import IdentityLabels, Namespace, Pod

LabelHash = NewType("LabelHash", str)

# The same encoder settings as weir.codec: deterministic order, so equal values give equal bytes.
_ENCODER = msgspec.msgpack.Encoder(order="deterministic")

# Prefixes that are the whole address family: they are the reserved `world` identity, not a CIDR
# identity of their own (as in Cilium), so `0.0.0.0/0` has exactly one ipcache entry.
WORLD_PREFIXES = ("0.0.0.0/0", "::/0")
# The world entries written to the ipcache. IPv4 only: the datapath is IPv4-only today, and
# node-loader reports every IPv6 entry it is given as unusable.
WORLD_ENTRIES = ("0.0.0.0/0",)


class BadPrefix(ValueError):
    """An address or prefix that does not parse."""


def pod_labels(pod: Pod, namespace: Namespace) -> IdentityLabels:
    """The label set of a pod's identity (its namespace must be known: see core.needs)."""
    return IdentityLabels(
        namespace=pod.meta.namespace,
        pod_labels=security_labels(pod.meta.labels),
        namespace_labels=dict(sorted(namespace.meta.labels.items())),
    )


def cidr_labels(prefix: str) -> IdentityLabels:
    """The label set of a CIDR identity; `prefix` must be canonical (see canonical_prefix)."""
    return IdentityLabels(cidr=prefix)


def reserved_name(reserved: Reserved) -> str:
    """Cilium's spelling of a reserved identity: `remote-node`, `kube-apiserver`, ..."""
    return reserved.name.lower().replace("_", "-")


def reserved_labels(reserved: Reserved) -> IdentityLabels:
    return IdentityLabels(reserved=reserved_name(reserved))


def label_hash(labels: IdentityLabels) -> LabelHash:
    return LabelHash(hashlib.sha256(_ENCODER.encode(labels)).hexdigest())


@functools.lru_cache(maxsize=65536)  # every pass re-plans every address: parse each once
def canonical_prefix(text: str) -> str:
    """`10.1.2.3/8` -> `10.0.0.0/8`: one spelling per prefix, so one identity per prefix.

    Host bits are dropped (the API accepts them in ipBlock, and they mean the same network).
    """
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as e:
        raise BadPrefix(f"{text!r} is not a CIDR: {e}") from None


@functools.lru_cache(maxsize=65536)
def host_prefix(ip: str) -> str:
    """A single address as an ipcache prefix: `10.244.1.5/32`, `fd00::5/128`."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        raise BadPrefix(f"{ip!r} is not an IP address") from None
    return f"{addr}/{addr.max_prefixlen}"
