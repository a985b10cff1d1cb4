"""What reaches weir-policy: only changed bytes, deletes of pods gone or moved, a level-triggered
start against what the bucket already holds, retries of failed writes, trace contexts."""

from __future__ import annotations

from dataclasses import replace

from weir import catalog
from weir.codec import Codec
from weir.models import DirectionPolicy, EndpointPolicy
from weir_policy_compiler.compile import Settings
from weir_policy_compiler.cookies import cookie_of
from weir_policy_compiler.core import Compiler, Write

from tests.unit.policy_compiler.harness import Cluster, make_pod, make_policy, model_cluster

CODEC = Codec(catalog.POLICY_SCHEMA)


def test_the_catalogue_codec_encodes_int_keyed_cookies_deterministically() -> None:
    a, b = cookie_of("x/p: ingress rule 1"), cookie_of("x/p: ingress default deny")
    policy = EndpointPolicy(
        node="n",
        pod_namespace="x",
        pod_name="p",
        pod_uid="u",
        identity=300,
        ingress=DirectionPolicy(enforced=True, default_cookie=b),
        egress=DirectionPolicy(),
        cookies={a: "x/p: ingress rule 1", b: "x/p: ingress default deny"},
    )
    shuffled = replace(policy, cookies=dict(reversed(list(policy.cookies.items()))))
    assert CODEC.encode(policy) == CODEC.encode(shuffled)
    assert CODEC.decode(CODEC.encode(policy)) == policy


def test_unchanged_values_are_not_written_again() -> None:
    c = model_cluster()
    assert c.sync() == []
    c.apply_policy(
        {
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": []},
        }
    )
    assert [w.key for w in c.sync()] == ["node-1.x.a"]
    # Relabelling a pod nobody selects changes its identity: its own value, nothing else.
    c.label_pod("z/c", {"color": "red"})
    assert [w.key for w in c.sync()] == ["node-1.z.c"]


def test_a_deleted_pod_loses_its_key_and_a_recreated_pod_on_another_node_moves() -> None:
    c = model_cluster()
    c.delete_pod("x/a")
    assert c.sync() == [Write("node-1.x.a", None)]
    c.pod(make_pod("x", "a", ip="10.244.2.200", node="node-2", uid="uid-2"))
    (w,) = c.sync()
    assert w.key == "node-2.x.a" and w.value is not None
    assert CODEC.decode(w.value).pod_uid == "uid-2"


def test_a_pod_moving_onto_the_host_network_loses_its_key() -> None:
    c = model_cluster()
    pod = c.pods[("x", "a")]
    c.pod(replace(pod, host_network=True))
    assert c.sync() == [Write("node-1.x.a", None)]


def test_start_is_level_triggered_against_the_bucket() -> None:
    first = model_cluster()
    held = dict(first.bucket)
    held["node-1.gone.pod"] = held["node-1.x.a"]  # a pod deleted while we were down
    held["node-9.x.a"] = held["node-1.x.a"]  # x/a's key from an earlier life on node-9
    held["node-1.junk.x"] = b"\xc1garbage"  # undecodable
    held["node-2.x.b"] = b"stale bytes"  # an endpoint that exists, with an old value

    # A restarted compiler replays the same inputs.
    again = Cluster()
    again.compiler.load_output(
        {k: (v, _decode(v)) for k, v in held.items()},
    )
    again.bucket = dict(held)
    for ns in first.namespaces.values():
        again.compiler.namespace_changed(ns.meta.name, ns)
        again.namespaces[ns.meta.name] = ns
    for pod in first.pods.values():
        again.pod(pod)
    again.allocator = first.allocator  # the same numbers, as the real bucket would hold
    writes = again.sync()
    assert sorted(w.key for w in writes if w.value is None) == [
        "node-1.gone.pod",
        "node-1.junk.x",
        "node-9.x.a",
    ]
    assert [w.key for w in writes if w.value is not None] == ["node-2.x.b"]
    assert again.bucket == first.bucket


def _decode(data: bytes) -> EndpointPolicy | None:
    try:
        return CODEC.decode(data)
    except ValueError:
        return None


def test_a_known_identity_survives_a_restart_before_identities_replay() -> None:
    """At start, a pod whose label set has no number in weir-identities (yet) keeps the
    identity its stored policy names, rather than losing its endpoint."""
    first = model_cluster()
    again = Compiler(Settings(), CODEC.encode)
    again.load_output({k: (v, CODEC.decode(v)) for k, v in first.bucket.items()})
    for namespace in first.namespaces.values():
        again.namespace_changed(namespace.meta.name, namespace)
    for (ns, name), pod in first.pods.items():
        again.pod_changed(ns, name, pod)
    again.start()
    assert again.flush() == []  # nothing deleted, nothing changed


def test_nothing_is_written_before_start() -> None:
    c = Cluster()
    c.namespace("x")
    c.pod(make_pod("x", "a", ip="10.244.1.1"))
    c.run_allocator()
    assert c.compiler.flush() == []
    c.compiler.start()
    assert [w.key for w in c.compiler.flush()] == ["node-1.x.a"]


def test_a_failed_put_is_written_again() -> None:
    c = model_cluster()
    c.compiler.forget("node-1.x.a", was_delete=False)
    assert c.compiler.pending == 1
    (w,) = c.compiler.flush()
    assert w.key == "node-1.x.a" and w.value == c.bucket["node-1.x.a"]


def test_a_failed_delete_is_sent_again() -> None:
    c = model_cluster()
    c.delete_pod("x/a")
    c.sync()
    c.compiler.forget("node-1.x.a", was_delete=True)
    assert c.compiler.flush() == [Write("node-1.x.a", None)]


def test_writes_carry_the_trace_context_of_the_change_that_caused_them() -> None:
    c = model_cluster()
    marker = object()  # opaque to the core: the shell passes OpenTelemetry contexts
    policy = make_policy(
        {
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": []},
        }
    )
    c.compiler.policy_changed("x", "p", policy, marker)
    writes = c.compiler.flush()
    assert {w.key: w.context for w in writes} == {"node-2.x.b": marker}


def test_figures() -> None:
    c = model_cluster()
    c.apply_policy(
        {
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]},
        }
    )
    c.sync()
    assert c.compiler.endpoints == 9
    assert c.compiler.entries == 3 * 2  # x/a, x/b, x/c: the port and the host
    assert c.compiler.pending == 0
