"""Reading a kubeconfig: the current context's server, TLS settings and credentials.

Our own small reader instead of kubernetes-asyncio's: importing that package's client costs
about 75 MB of memory, most of a kubelet's footprint. Supported: `current-context`, a
cluster's `server`, `certificate-authority[-data]` and `insecure-skip-tls-verify`, a user's
`token`, `tokenFile`, `client-certificate[-data]` and `client-key[-data]`, relative paths
resolved against the kubeconfig's directory. Exec and auth-provider plugins are not.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ClientSettings:
    server: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None


def _named(items: Any, name: str, kind: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"{kind} {name!r} not found")


def _file_or_data(entry: dict[str, Any], key: str, base: Path) -> tuple[str | None, bytes | None]:
    data = entry.get(f"{key}-data")
    if data:
        return None, base64.b64decode(data)
    path = entry.get(key)
    if path:
        return str(base / path), None
    return None, None


def _to_file(data: bytes) -> str:
    """ssl loads certificate chains from files only: a private temp file holds inline data."""
    fd, path = tempfile.mkstemp(prefix="weir-kubelet-", suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def load(path: Path) -> ClientSettings:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigError(f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig")
    base = path.parent
    context = _named(doc.get("contexts"), str(doc.get("current-context") or ""), "context")
    cluster = _named(doc.get("clusters"), str(context.get("cluster") or ""), "cluster")
    user_name = context.get("user")
    user = _named(doc.get("users"), str(user_name), "user") if user_name else {}
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"{path}: the cluster has no server")
    headers: dict[str, str] = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / str(user["tokenFile"])).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    ctx: ssl.SSLContext | None = None
    if server.startswith("https"):
        ca_file, ca_data = _file_or_data(cluster, "certificate-authority", base)
        ctx = ssl.create_default_context(
            cafile=ca_file, cadata=ca_data.decode() if ca_data else None
        )
        if cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        cert_file, cert_data = _file_or_data(user, "client-certificate", base)
        key_file, key_data = _file_or_data(user, "client-key", base)
        temps = []
        if cert_data is not None:
            cert_file = _to_file(cert_data)
            temps.append(cert_file)
        if key_data is not None:
            key_file = _to_file(key_data)
            temps.append(key_file)
        try:
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file)
        finally:
            for t in temps:  # loaded into the context: the files are not needed again
                os.unlink(t)
    return ClientSettings(server=server, headers=headers, ssl_context=ctx)
