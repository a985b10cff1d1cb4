"""The versioned msgpack codec: round trips, and refusals that name what is wrong."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest
from weir import catalog
from weir.catalog import K8S_SCHEMA, k8s_key_of
from weir.codec import Codec, MalformedMessage, UnknownMessageType, UnknownSchemaVersion
from weir.labels import LabelSelector, Operator, Requirement
from weir.models import (
    DirectionPolicy,
    EndpointPolicy,
    IPBlock,
    Meta,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
)

POLICY = NetworkPolicy(
    meta=Meta(
        name="allow-x", namespace="y", uid="u1", resource_version="7", labels={"b": "2", "a": "1"}
    ),
    generation=3,
    pod_selector=LabelSelector(match_labels={"pod": "a"}),
    policy_types=(PolicyType.INGRESS,),
    ingress=(
        PolicyRule(
            peers=(
                PolicyPeer(
                    namespace_selector=LabelSelector(
                        match_expressions=(
                            Requirement(key="ns", operator=Operator.IN, values=("x", "z")),
                        )
                    )
                ),
                PolicyPeer(ip_block=IPBlock(cidr="10.0.0.0/8", except_=("10.1.0.0/16",))),
            ),
            ports=(
                PolicyPort(protocol=Protocol.TCP, port="serve-80-tcp"),
                PolicyPort(protocol=Protocol.UDP, port=81, end_port=90),
            ),
        ),
    ),
)


def test_round_trip_keeps_every_field() -> None:
    codec = Codec(K8S_SCHEMA)
    assert codec.decode(codec.encode(POLICY)) == POLICY


def test_equal_values_encode_to_equal_bytes_whatever_the_label_order() -> None:
    codec = Codec(K8S_SCHEMA)
    other = NetworkPolicy(
        meta=Meta(
            name="allow-x",
            namespace="y",
            uid="u1",
            resource_version="7",
            labels={"a": "1", "b": "2"},
        ),
        generation=POLICY.generation,
        pod_selector=POLICY.pod_selector,
        policy_types=POLICY.policy_types,
        ingress=POLICY.ingress,
    )
    assert codec.encode(other) == codec.encode(POLICY)


def test_unknown_schema_version_is_refused() -> None:
    data = msgspec.msgpack.encode((K8S_SCHEMA.version + 1, "NetworkPolicy", {}))
    with pytest.raises(UnknownSchemaVersion, match="version 2"):
        Codec(K8S_SCHEMA).decode(data)


def test_unknown_type_is_refused() -> None:
    data = msgspec.msgpack.encode((K8S_SCHEMA.version, "Deployment", {}))
    with pytest.raises(UnknownMessageType, match="Deployment"):
        Codec(K8S_SCHEMA).decode(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", msgspec.msgpack.encode({"v": 1}), msgspec.msgpack.encode([1, "Pod"])],
)
def test_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Codec(K8S_SCHEMA).decode(data)


def test_wrongly_typed_payload_names_the_field() -> None:
    good = msgspec.msgpack.decode(Codec(K8S_SCHEMA).encode(POLICY))
    good[2]["generation"] = "three"
    with pytest.raises(MalformedMessage, match=r"generation"):
        Codec(K8S_SCHEMA).decode(msgspec.msgpack.encode(good))


def test_encoding_a_foreign_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        Codec(K8S_SCHEMA).encode(POLICY.meta)  # type: ignore[arg-type]


def test_keys() -> None:
    assert k8s_key_of(POLICY) == "networkpolicy.y.allow-x"


def test_maps_keyed_by_integers_encode_in_one_order_and_decode_back() -> None:
    codec = Codec(catalog.POLICY_SCHEMA)
    policy = EndpointPolicy(
        node="n",
        pod_namespace="x",
        pod_name="p",
        pod_uid="u",
        identity=300,
        ingress=DirectionPolicy(enforced=True, default_cookie=7),
        egress=DirectionPolicy(),
        cookies={9: "x/p: ingress rule 1", 7: "x/p: ingress default deny"},
    )
    reordered = replace(policy, cookies={7: policy.cookies[7], 9: policy.cookies[9]})
    assert codec.encode(policy) == codec.encode(reordered)
    assert codec.decode(codec.encode(policy)) == policy
