"""What needs an identity (from weir-k8s alone), what the index makes of weir-identities, and
which numbers count as in use."""

from __future__ import annotations

from weir import catalog
from weir.models import Identity, IdentityLabels
from weir_identity_allocator.core import K8sView, Problem, in_use, needs
from weir_identity_allocator.index import IdentityIndex
from weir_identity_allocator.labels import cidr_labels, label_hash

from tests.unit.identity_allocator.fakes import cidr_policy, namespace, node, pod


def view_of(*objects: object) -> K8sView:
    view = K8sView()
    for obj in objects:
        assert view.apply(catalog.k8s_key_of(obj), obj) is None  # type: ignore[arg-type]
    return view


def test_pods_need_their_label_sets_and_share_them() -> None:
    view = view_of(
        namespace("x"),
        pod("x", "a", {"app": "web", "pod-template-hash": "1"}),
        pod("x", "b", {"app": "web", "pod-template-hash": "2"}),
        pod("x", "c", {"app": "db"}),
    )
    n = needs(view)
    assert len(n.label_sets) == 2
    assert n.pods["pod.x.a"] == n.pods["pod.x.b"] != n.pods["pod.x.c"]
    assert sorted(n.users[n.pods["pod.x.a"]]) == ["pod.x.a", "pod.x.b"]


def test_a_pod_waits_for_its_namespace_and_never_gets_an_identity_without_it() -> None:
    view = view_of(pod("x", "a", {"app": "web"}))
    n = needs(view)
    assert n.pods == {} and n.label_sets == {} and n.waiting == ["pod.x.a"]
    view.apply("namespace.x", namespace("x", team="a"))
    n = needs(view)
    assert n.waiting == []
    labels = n.label_sets[n.pods["pod.x.a"]]
    assert labels.namespace_labels["team"] == "a"


def test_host_network_and_finished_pods_need_nothing() -> None:
    view = view_of(
        namespace("kube-system"),
        pod("kube-system", "proxy", {"app": "p"}, host_network=True),
        pod("kube-system", "job", {"app": "j"}, phase="Succeeded"),
        pod("kube-system", "bad", {"app": "b"}, phase="Failed"),
        pod("kube-system", "pending", {"app": "q"}, phase="Pending", node=""),
    )
    assert list(needs(view).pods) == ["pod.kube-system.pending"]


def test_every_policy_cidr_and_except_needs_a_cidr_identity_once() -> None:
    view = view_of(
        cidr_policy("x", "a", ("10.0.0.0/8", ("10.1.0.0/16", "10.2.0.0/16"))),
        cidr_policy("y", "b", ("10.0.0.0/8", ()), ("192.168.1.7/24", ())),
        cidr_policy("y", "world", ("0.0.0.0/0", ("169.254.0.0/16",))),
    )
    n = needs(view)
    assert sorted(n.cidrs) == [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.2.0.0/16",
        "169.254.0.0/16",
        "192.168.1.0/24",
    ]  # 0.0.0.0/0 is the reserved world identity
    assert n.label_sets[n.cidrs["10.0.0.0/8"]] == cidr_labels("10.0.0.0/8")
    assert n.users[n.cidrs["10.0.0.0/8"]] == ["networkpolicy.x.a", "networkpolicy.y.b"]


def test_a_cidr_that_does_not_parse_is_a_problem_and_the_rest_is_kept() -> None:
    view = view_of(cidr_policy("x", "bad", ("10.0.0.0/99", ()), ("10.9.0.0/16", ())))
    n = needs(view)
    assert list(n.cidrs) == ["10.9.0.0/16"]
    assert [(p.key, p.reason) for p in n.problems] == [("networkpolicy.x.bad", "bad-cidr")]


def test_the_view_follows_deletes_and_ignores_kinds_it_does_not_read() -> None:
    view = view_of(namespace("x"), pod("x", "a"), node("n1", "172.18.0.2"))
    view.apply("pod.x.a", None)
    view.apply("namespace.x", None)
    assert view.pods == {} and view.namespaces == {}
    assert view.apply("service.x.web", None) is None and not view.relevant("service.x.web")
    problem = view.apply("pod.x.b", namespace("oops"))
    assert isinstance(problem, Problem) and problem.reason == "wrong-kind"
    assert "pod.x.b" not in view.pods


WEB = IdentityLabels(namespace="x", pod_labels={"app": "web"})


def index_with(*entries: tuple[str, int, IdentityLabels | None]) -> IdentityIndex:
    index = IdentityIndex()
    for rev, (key, number, labels) in enumerate(entries, 1):
        value = None if labels is None else Identity(id=number, labels=labels)
        index.apply(key, value, rev, live=True)
    return index


def test_the_index_knows_numbers_orphans_and_forgets_deletes() -> None:
    h = label_hash(WEB)
    index = index_with(("id.300", 300, WEB), ("id.301", 301, WEB))
    assert index.orphans(h) == [(300, 1), (301, 2)] and index.number_of(h) is None
    index.apply(f"labels.{h}", Identity(id=301, labels=WEB), 3, live=True)
    assert index.number_of(h) == 301 and index.orphans(h) == []
    index.apply("id.301", None, 4, live=False)
    assert index.number_of(h) is None  # names a number that no longer holds it
    assert set(index.numbers) == {300} and index.holders(h) == {300}
    assert not index.apply("something.else", None, 5, live=False)


def test_in_use_is_the_labels_keys_number_of_every_needed_set() -> None:
    h = label_hash(WEB)
    index = index_with(
        ("id.300", 300, WEB),
        ("id.301", 301, WEB),  # a lost race's leftover
        (f"labels.{h}", 300, WEB),
        ("id.400", 400, cidr_labels("10.0.0.0/8")),
    )
    assert in_use(index, {h: WEB}) == {300}
    assert in_use(index, {}) == set()
    # While the labels key is absent (a release in progress), every holder may be revived.
    index.apply(f"labels.{h}", None, 9, live=False)
    assert in_use(index, {h: WEB}) == {300, 301}
