"""Protobuf request bodies, as kubectl's `create namespace` / `create service` send them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from weir_local.apiserver import protobuf
from weir_local.apiserver.config import Config
from weir_local.apiserver.errors import StatusError
from weir_local.apiserver.server import build_app

# Captured from kubectl 1.35: `create namespace zz`, `create service nodeport web
# --tcp=80:8080 --node-port=30080`.
NAMESPACE = bytes.fromhex(
    "6b3873000a0f0a02763112094e616d657370616365121a0a120a027a7a12001a0022002a00320038004200"
    "12001a020a001a002200"
)
NODEPORT_SERVICE = bytes.fromhex(
    "6b3873000a0d0a027631120753657276696365126a0a1f0a0377656212001a0022002a003200380042005a"
    "0a0a03617070120377656212430a1d0a0738302d38303830120354435018502207080010903f1a002880eb"
    "01120a0a0361707012037765621a0022084e6f6465506f72743a00420052005a00600068001a020a001a00"
    "2200"
)


def test_decodes_what_kubectl_sends() -> None:
    assert protobuf.decode(NAMESPACE) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "zz"},
    }
    assert protobuf.decode(NODEPORT_SERVICE) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "ports": [
                {
                    "name": "80-8080",
                    "protocol": "TCP",
                    "port": 80,
                    "targetPort": 8080,
                    "nodePort": 30080,
                }
            ],
            "selector": {"app": "web"},
            "type": "NodePort",
        },
    }


def test_rejects_garbage_and_other_kinds() -> None:
    with pytest.raises(StatusError) as e:
        protobuf.decode(b"not protobuf")
    assert e.value.code == 400
    with pytest.raises(StatusError) as e:
        protobuf.decode(NAMESPACE[:-9])
    assert e.value.code == 400
    pod = NAMESPACE.replace(b"\x0a\x0f", b"\x0a\x09", 1).replace(
        b"\x12\x09Namespace", b"\x12\x03Pod"
    )
    with pytest.raises(StatusError) as e:
        protobuf.decode(pod)
    assert e.value.code == 415


async def test_protobuf_create_through_http() -> None:
    async with TestClient(TestServer(build_app(Config()))) as c:
        ctype = {"Content-Type": "application/vnd.kubernetes.protobuf"}
        r = await c.post("/api/v1/namespaces", data=NAMESPACE, headers=ctype)
        assert r.status == 201, await r.text()
        r = await c.post("/api/v1/namespaces/zz/services", data=NODEPORT_SERVICE, headers=ctype)
        body: dict[str, Any] = await r.json()
        assert r.status == 201, body
        assert body["spec"]["ports"][0]["nodePort"] == 30080
        assert body["spec"]["clusterIP"]
