"""ipcache planning (pods, hostNetwork, nodes, CIDRs, world, collisions) and the diff."""

from __future__ import annotations

from weir import catalog
from weir.identity import LOCAL_CIDR_FLAG, Reserved
from weir.models import IPCacheEntry, IPCacheKind
from weir_identity_allocator.core import K8sView, needs
from weir_identity_allocator.ipcache import Change, Mirror, plan
from weir_identity_allocator.labels import LabelHash

from tests.unit.identity_allocator.fakes import cidr_policy, namespace, node, pod


def view_of(*objects: object) -> K8sView:
    view = K8sView()
    for obj in objects:
        view.apply(catalog.k8s_key_of(obj), obj)  # type: ignore[arg-type]
    return view


class Numbering(dict[LabelHash, int]):
    """Hands out numbers the way the allocator would: one per label set, pods from 300."""

    def cover(self, view: K8sView) -> Numbering:
        n = needs(view)
        for h, labels in sorted(n.label_sets.items()):
            if h not in self:
                base = LOCAL_CIDR_FLAG | 1 if labels.cidr else 300
                self[h] = base + sum(
                    1 for v in self.values() if (v >= LOCAL_CIDR_FLAG) == bool(labels.cidr)
                )
        return self


def entries(view: K8sView, numbers: dict[LabelHash, int] | None = None) -> dict[str, IPCacheEntry]:
    numbers = numbers if numbers is not None else Numbering().cover(view)
    return {k: d.entry for k, d in plan(view, needs(view), numbers).entries.items()}


def test_pods_nodes_cidrs_and_world() -> None:
    view = view_of(
        namespace("x"),
        pod("x", "web", {"app": "web"}, ips=("10.244.1.5", "fd00::5"), node="n1"),
        pod("x", "proxy", {"app": "p"}, ips=("172.18.0.2",), host_network=True),
        pod("x", "new", {"app": "web"}),  # no IP yet: nothing to map
        node("n1", "172.18.0.2"),
        node("n2", "172.18.0.3"),
        cidr_policy("x", "egress", ("10.0.0.0/8", ("10.1.0.0/16",))),
    )
    numbers = Numbering().cover(view)
    got = entries(view, numbers)
    web = got["10.244.1.5/32"]
    assert web.kind is IPCacheKind.POD and (web.pod_namespace, web.pod_name, web.node) == (
        "x",
        "web",
        "n1",
    )
    assert got["fd00::5/128"].identity == web.identity >= 256
    assert got["172.18.0.2/32"] == IPCacheEntry(
        prefix="172.18.0.2/32", identity=Reserved.REMOTE_NODE, kind=IPCacheKind.NODE, node="n1"
    )  # the hostNetwork pod's address is its node's
    assert got["172.18.0.3/32"].node == "n2"
    for prefix in ("10.0.0.0/8", "10.1.0.0/16"):
        assert got[prefix].kind is IPCacheKind.CIDR and got[prefix].identity & LOCAL_CIDR_FLAG
    assert got["10.0.0.0/8"].identity != got["10.1.0.0/16"].identity
    assert got["0.0.0.0/0"] == IPCacheEntry(
        prefix="0.0.0.0/0", identity=Reserved.WORLD, kind=IPCacheKind.WORLD
    )
    assert "::/0" not in got  # the datapath is IPv4-only
    assert len(got) == 7


def test_a_label_set_without_a_number_yet_gets_no_entries() -> None:
    view = view_of(namespace("x"), pod("x", "a", {"app": "web"}, ips=("10.244.1.5",)))
    assert "10.244.1.5/32" not in entries(view, {})


def test_a_label_change_moves_the_pod_to_its_new_identity() -> None:
    view = view_of(namespace("x"), pod("x", "a", {"app": "web"}, ips=("10.244.1.5",)))
    numbers = Numbering().cover(view)
    before = entries(view, numbers)["10.244.1.5/32"].identity
    view.apply("pod.x.a", pod("x", "a", {"app": "api"}, ips=("10.244.1.5",)))
    after = entries(view, numbers.cover(view))["10.244.1.5/32"].identity
    assert after != before
    # ... and so does a change of its namespace's labels.
    view.apply("namespace.x", namespace("x", team="b"))
    moved = entries(view, numbers.cover(view))["10.244.1.5/32"].identity
    assert moved not in (before, after)


def test_who_wins_a_prefix_claimed_twice() -> None:
    view = view_of(
        namespace("x"),
        pod("x", "old", {"app": "a"}, ips=("10.244.1.5",), terminating=True),
        pod("x", "reused", {"app": "b"}, ips=("10.244.1.5",)),
        pod("x", "weird", {"app": "c"}, ips=("172.18.0.2",)),
        node("n1", "172.18.0.2"),
        cidr_policy("x", "p", ("10.244.1.5/32", ()), ("0.0.0.0/0", ())),
    )
    got = entries(view)
    assert got["10.244.1.5/32"].pod_name == "reused"  # running beats terminating beats CIDR
    # ... and the CIDR's identity rides along, for the ipBlock rules written for it
    assert got["10.244.1.5/32"].cidr_identity >= LOCAL_CIDR_FLAG
    assert got["172.18.0.2/32"].kind is IPCacheKind.NODE  # a node's address is the node's
    assert got["172.18.0.2/32"].cidr_identity == 0
    assert got["0.0.0.0/0"].kind is IPCacheKind.WORLD
    problems = plan(view, needs(view), Numbering().cover(view)).problems
    assert ("pod.x.old", "address-conflict") in [(p.key, p.reason) for p in problems]


def test_a_malformed_pod_ip_is_a_problem_and_the_pods_other_ips_are_kept() -> None:
    view = view_of(
        namespace("x"),
        pod("x", "a", {"app": "web"}, ips=("10.244.1.300", "10.244.1.6")),
        node("n1", "not-an-ip", "172.18.0.9"),
    )
    result = plan(view, needs(view), Numbering().cover(view))
    assert "10.244.1.6/32" in result.entries and "172.18.0.9/32" in result.entries
    assert sorted((p.key, p.reason) for p in result.problems) == [
        ("node.n1", "bad-ip"),
        ("pod.x.a", "bad-ip"),
    ]


def test_plans_are_the_same_on_every_replica() -> None:
    objects = [
        namespace("x"),
        *(pod("x", f"p{i}", {"app": f"a{i % 3}"}, ips=(f"10.244.1.{i}",)) for i in range(20)),
        node("n1", "172.18.0.2"),
    ]
    one, two = view_of(*objects), view_of(*reversed(objects))
    numbers = Numbering().cover(one)
    assert entries(one, numbers) == entries(two, numbers)


# --- the mirror ---------------------------------------------------------------------------


def e(prefix: str, identity: int) -> IPCacheEntry:
    return IPCacheEntry(prefix=prefix, identity=identity, kind=IPCacheKind.CIDR)


def test_the_diff_writes_only_what_differs_and_deletes_what_nothing_needs() -> None:
    m = Mirror()
    m.observe("a", e("a", 1), live=True)
    m.observe("b", e("b", 2), live=True)
    m.observe("junk", None, live=True)  # undecodable: garbage to remove
    changes = m.diff({"a": e("a", 1), "b": e("b", 3), "c": e("c", 4)})
    assert sorted(changes, key=lambda c: c.key) == [
        Change("b", e("b", 3), e("b", 2)),
        Change("c", e("c", 4), None),
        Change("junk", None, None),
    ]
    for c in changes:
        m.sent(c)
    assert m.diff({"a": e("a", 1), "b": e("b", 3), "c": e("c", 4)}) == []
    assert m.identities() == {1: 1, 3: 1, 4: 1}


def test_a_failed_write_is_written_again_and_the_watch_corrects_the_mirror() -> None:
    m = Mirror()
    m.sent(Change("a", e("a", 1), None))
    m.forget("a")
    assert m.diff({"a": e("a", 1)}) == [Change("a", e("a", 1), None)]
    assert m.observe("a", e("a", 1), live=True)  # the bucket did get it after all
    assert m.diff({"a": e("a", 1)}) == []
    assert not m.observe("a", e("a", 1), live=True)  # an echo is not news
    assert m.observe("a", None, live=False)  # deleted by hand: news
    assert m.diff({"a": e("a", 1)}) == [Change("a", e("a", 1), None)]
