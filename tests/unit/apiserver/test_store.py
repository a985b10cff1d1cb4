"""The store and the API operations without HTTP: resourceVersions, history and 410s,
selector transitions for watchers, continue tokens, graceful deletion, finalizers,
allocation, namespace termination and persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from weir_local.apiserver.config import Config
from weir_local.apiserver.errors import StatusError
from weir_local.apiserver.operations import ListQuery
from weir_local.apiserver.resources import ResourceInfo
from weir_local.apiserver.state import ApiServerState
from weir_local.apiserver.store import ADDED, DELETED, MODIFIED, Store, Watcher


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(tmp: Path | None = None, clock: Clock | None = None, **cfg: Any) -> ApiServerState:
    return ApiServerState(Config(state_dir=tmp, **cfg), clock=clock or Clock())


def res(state: ApiServerState, key: str) -> ResourceInfo:
    return state.resources.by_key(key)


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "img"}], **spec},
    }


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}], **spec},
    }


def drain(w: Watcher) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of everything queued for `w`."""
    out = []
    while w.queue:
        typ, ev, use_old = w.queue.popleft()
        obj = ev.old.obj if use_old and ev.old else ev.entry.obj
        out.append((typ, obj["metadata"]["name"], str(ev.rv)))
    return out


# ---- resourceVersion and history -------------------------------------------------------------


def test_every_write_takes_the_next_global_resource_version() -> None:
    st = make()
    start = st.store.rv
    a = st.api.create(res(st, "pods"), "default", pod("a")).obj
    b = st.api.create(res(st, "services"), "default", svc("b")).obj
    assert a["metadata"]["resourceVersion"] == str(start + 1)
    assert b["metadata"]["resourceVersion"] == str(start + 2)
    st.api.delete(res(st, "pods"), "default", "a")
    assert st.store.rv == start + 3
    lst = st.api.list_entries(res(st, "pods"), None, ListQuery())
    assert lst.resource_version == start + 3 and lst.entries == []


def test_create_sets_metadata_bookkeeping_and_generate_name() -> None:
    st = make()
    body = pod("")
    body["metadata"] = {"generateName": "web-"}
    obj = st.api.create(res(st, "pods"), "default", body).obj
    m = obj["metadata"]
    assert m["name"].startswith("web-") and len(m["name"]) == len("web-") + 5
    assert m["name"][4:].isalnum() and m["name"][4:].islower()
    assert len(m["uid"]) == 36 and m["generation"] == 1
    assert m["creationTimestamp"] == "2027-01-15T08:00:00Z"
    assert m["namespace"] == "default"
    assert obj["status"]["phase"] == "Pending" and obj["status"]["qosClass"] == "BestEffort"


def test_generation_moves_only_with_the_spec() -> None:
    st = make()
    pods = res(st, "services")
    st.api.create(pods, "default", svc("s"))
    labelled = st.api.patch(pods, "default", "s", "merge", b'{"metadata":{"labels":{"a":"b"}}}')
    assert labelled.obj["metadata"]["generation"] == 1
    changed = st.api.patch(pods, "default", "s", "merge", b'{"spec":{"ports":[{"port":81}]}}')
    assert changed.obj["metadata"]["generation"] == 2


def test_stale_resource_version_conflicts_and_empty_is_unconditional() -> None:
    st = make()
    r = res(st, "services")
    first = st.api.create(r, "default", svc("s")).obj
    stale = first["metadata"]["resourceVersion"]
    st.api.patch(r, "default", "s", "merge", b'{"metadata":{"labels":{"x":"1"}}}')
    body = svc("s")
    body["metadata"]["resourceVersion"] = stale
    with pytest.raises(StatusError) as e:
        st.api.update(r, "default", "s", body)
    assert e.value.code == 409
    assert e.value.message == (
        'Operation cannot be fulfilled on services "s": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    body["metadata"].pop("resourceVersion")
    out = st.api.update(r, "default", "s", body).obj
    assert out["spec"]["clusterIP"] == first["spec"]["clusterIP"]  # kept though omitted


def test_noop_update_keeps_the_resource_version() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a"))
    rv = st.store.rv
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{}}}')
    assert st.store.rv == rv


def test_watch_from_a_resource_version_replays_only_later_changes() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a"))
    since = st.store.rv
    st.api.create(r, "default", pod("b"))
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{"x":"1"}}}')
    w = st.api.watch(r, None, resource_version=str(since))
    assert [(t, n) for t, ev, _ in w.backlog for n in [ev.name]] == [
        (ADDED, "b"),
        (MODIFIED, "a"),
    ]
    st.api.delete(r, "default", "b")
    assert drain(w) == [(DELETED, "b", str(st.store.rv))]


def test_watch_without_resource_version_starts_with_current_objects() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a"))
    st.api.create(r, "default", pod("b"))
    w = st.api.watch(r, "default", resource_version="0")
    assert sorted(e.obj["metadata"]["name"] for e in w.initial) == ["a", "b"]
    assert w.backlog == [] and w.start_rv == st.store.rv


def test_watch_older_than_history_is_410_with_the_real_wording() -> None:
    st = make(watch_history=3)
    r = res(st, "pods")
    rv0 = st.store.rv
    for i in range(5):
        st.api.create(r, "default", pod(f"p{i}"))
    with pytest.raises(StatusError) as e:
        st.api.watch(r, None, resource_version=str(rv0))
    assert e.value.code == 410 and e.value.reason == "Expired"
    assert e.value.message == f"too old resource version: {rv0} ({st.store.history_start_rv})"
    st.api.watch(r, None, resource_version=str(st.store.rv - 3))  # still in the window


def test_compact_expires_watches_and_continue_tokens_from_before() -> None:
    st = make()
    r = res(st, "pods")
    for i in range(4):
        st.api.create(r, "default", pod(f"p{i}"))
    page = st.api.list_entries(r, "default", ListQuery(limit=2))
    assert page.continue_token and page.remaining == 2
    st.api.create(r, "default", pod("late"))
    st.store.compact()
    with pytest.raises(StatusError) as e:
        st.api.list_entries(r, "default", ListQuery(limit=2, continue_token=page.continue_token))
    assert e.value.code == 410
    assert e.value.message.startswith("The provided continue parameter is too old")
    with pytest.raises(StatusError):
        st.api.watch(r, None, resource_version=str(page.resource_version))


def test_continue_tokens_serve_the_snapshot_of_the_first_page() -> None:
    st = make()
    r = res(st, "pods")
    for i in range(5):
        st.api.create(r, "default", pod(f"p{i}"))
    first = st.api.list_entries(r, "default", ListQuery(limit=2))
    st.api.delete(r, "default", "p3")
    st.api.create(r, "default", pod("p9"))
    st.api.patch(r, "default", "p4", "merge", b'{"metadata":{"labels":{"x":"1"}}}')
    names, token, rvs = [], first.continue_token, []
    names += [e.obj["metadata"]["name"] for e in first.entries]
    while token:
        page = st.api.list_entries(r, "default", ListQuery(limit=2, continue_token=token))
        names += [e.obj["metadata"]["name"] for e in page.entries]
        rvs += [e.obj["metadata"].get("labels", {}).get("x") for e in page.entries]
        token = page.continue_token
        assert page.resource_version == first.resource_version
    assert names == ["p0", "p1", "p2", "p3", "p4"]
    assert rvs[-1] is None  # p4 as it was at the first page


def test_label_and_field_selectors_filter_lists() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a", {"app": "web"}, nodeName="n1"))
    st.api.create(r, "default", pod("b", {"app": "db"}))
    st.api.create(r, "kube-system", pod("c", {"app": "web"}))
    got = st.api.list_entries(r, None, ListQuery(label_selector="app=web"))
    assert [e.obj["metadata"]["name"] for e in got.entries] == ["a", "c"]
    got = st.api.list_entries(r, None, ListQuery(field_selector="spec.nodeName=n1"))
    assert [e.obj["metadata"]["name"] for e in got.entries] == ["a"]
    got = st.api.list_entries(r, "default", ListQuery(field_selector="metadata.name=b"))
    assert [e.obj["metadata"]["name"] for e in got.entries] == ["b"]
    with pytest.raises(StatusError) as e:
        st.api.list_entries(r, None, ListQuery(field_selector="spec.bogus=1"))
    assert e.value.code == 400


def test_selector_transitions_become_added_and_deleted_for_the_watcher() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a", {"app": "web"}))
    w = st.api.watch(r, "default", label_selector="app=web", resource_version=str(st.store.rv))
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{"app":"db"}}}')
    moved_out_rv = st.store.rv
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{"v":"2"}}}')  # unseen
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{"app":"web"}}}')
    st.api.patch(r, "default", "a", "merge", b'{"metadata":{"labels":{"v":"3"}}}')
    events = w.queue.copy()
    assert [t for t, _, _ in events] == [DELETED, ADDED, MODIFIED]
    _typ, ev, use_old = events[0]
    assert use_old  # the DELETED carries the old content (still matching) at the new RV
    deleted = ev.old_raw_at_event_rv()
    assert b'"app":"web"' in deleted and f'"resourceVersion":"{moved_out_rv}"'.encode() in deleted


def test_a_slow_watcher_is_closed_and_never_blocks_writers() -> None:
    st = make(watch_queue_limit=3)
    r = res(st, "pods")
    w = st.api.watch(r, None, resource_version=str(st.store.rv))
    for i in range(10):
        st.api.create(r, "default", pod(f"p{i}"))
    assert w.closed and len(w.queue) == 3


def test_finalizers_hold_any_object_until_emptied() -> None:
    st = make()
    r = res(st, "services")
    body = svc("s")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    st.api.create(r, "default", body)
    held = st.api.delete(r, "default", "s")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"]
    assert st.store.get("services", "default", "s") is not None
    st.api.patch(r, "default", "s", "merge", b'{"metadata":{"finalizers":null}}')
    assert st.store.get("services", "default", "s") is None


def test_pod_delete_is_graceful_when_scheduled_and_a_shorter_grace_shortens_it() -> None:
    clock = Clock()
    st = make(clock=clock)
    r = res(st, "pods")
    st.api.create(r, "default", pod("a", nodeName="n1", terminationGracePeriodSeconds=20))
    out = st.api.delete(r, "default", "a")
    assert out["metadata"]["deletionGracePeriodSeconds"] == 20
    assert out["metadata"]["deletionTimestamp"] == "2027-01-15T08:00:20Z"
    again = st.api.delete(r, "default", "a", {"gracePeriodSeconds": 30})
    assert again["kind"] == "Status"  # longer: nothing changes
    clock.t += 5
    shorter = st.api.delete(r, "default", "a", {"gracePeriodSeconds": 3})
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 3
    assert shorter["metadata"]["deletionTimestamp"] == "2027-01-15T08:00:03Z"
    st.api.delete(r, "default", "a", {"gracePeriodSeconds": 0})
    assert st.store.get("pods", "default", "a") is None


@pytest.mark.parametrize(
    ("spec", "status"),
    [({}, None), ({"nodeName": "n1"}, "Succeeded"), ({"nodeName": "n1"}, "Failed")],
)
def test_pod_delete_is_immediate_when_unscheduled_or_finished(
    spec: dict[str, Any], status: str | None
) -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a", **spec))
    if status:
        st.api.patch(
            r,
            "default",
            "a",
            "merge",
            b'{"status":{"phase":"%s"}}' % status.encode(),
            subresource="status",
        )
    out = st.api.delete(r, "default", "a")
    assert out["kind"] == "Status" and out["status"] == "Success"
    assert out["details"]["kind"] == "pods"
    assert st.store.get("pods", "default", "a") is None


def test_status_writes_keep_spec_and_main_writes_keep_status() -> None:
    st = make()
    r = res(st, "pods")
    st.api.create(r, "default", pod("a"))
    st.api.patch(
        r,
        "default",
        "a",
        "merge",
        b'{"spec":{"nodeName":"sneaky"},"status":{"podIP":"10.0.0.1"},'
        b'"metadata":{"labels":{"via":"status"}}}',
        subresource="status",
    )
    got = st.store.get("pods", "default", "a")
    assert got is not None
    assert "nodeName" not in got.obj["spec"]
    assert got.obj["status"]["podIP"] == "10.0.0.1"
    assert got.obj["metadata"]["labels"] == {"via": "status"}
    st.api.patch(r, "default", "a", "merge", b'{"status":{"podIP":"10.9.9.9"}}')
    got = st.store.get("pods", "default", "a")
    assert got is not None and got.obj["status"]["podIP"] == "10.0.0.1"


def test_binding_sets_the_node_once() -> None:
    st = make()
    st.api.create(res(st, "pods"), "default", pod("a"))
    st.api.bind("default", "a", {"kind": "Binding", "target": {"kind": "Node", "name": "n1"}})
    got = st.store.get("pods", "default", "a")
    assert got is not None and got.obj["spec"]["nodeName"] == "n1"
    with pytest.raises(StatusError) as e:
        st.api.bind("default", "a", {"target": {"name": "n2"}})
    assert e.value.code == 409
    assert e.value.message == (
        'Operation cannot be fulfilled on pods/binding "a": pod a is already assigned to node "n1"'
    )


def test_body_checks_have_the_real_messages() -> None:
    st = make()
    r = res(st, "pods")
    bad_version = pod("a")
    bad_version["apiVersion"] = "v2"
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", bad_version)
    assert e.value.message == (
        "the API version in the data (v2) does not match the expected API version (v1)"
    )
    other_ns = pod("a")
    other_ns["metadata"]["namespace"] = "kube-system"
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", other_ns)
    assert e.value.code == 400
    assert e.value.message == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )
    with pytest.raises(StatusError) as e:
        st.api.create(r, "nowhere", pod("a"))
    assert e.value.code == 404 and e.value.message == 'namespaces "nowhere" not found'
    st.api.create(r, "default", pod("a"))
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", pod("a"))
    assert e.value.code == 409 and e.value.message == 'pods "a" already exists'


def test_field_validation_strict_warn_ignore_and_pruning() -> None:
    st = make()
    r = res(st, "pods")
    body = pod("a")
    body["spec"]["foo"] = 1
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", dict(body), field_validation="Strict")
    assert e.value.code == 400
    assert e.value.message.endswith('strict decoding error: unknown field "spec.foo"')
    body = pod("a")
    body["spec"]["foo"] = 1
    warned = st.api.create(r, "default", body, field_validation="Warn")
    assert warned.warnings == ['unknown field "spec.foo"']
    assert "foo" not in warned.obj["spec"]
    body = pod("b")
    body["spec"]["foo"] = 1
    assert st.api.create(r, "default", body, field_validation="Ignore").warnings == []


def test_dry_run_changes_nothing() -> None:
    st = make()
    r = res(st, "services")
    rv = st.store.rv
    out = st.api.create(r, "default", svc("s"), dry_run=True).obj
    assert out["spec"]["clusterIP"]
    assert st.store.rv == rv and st.store.get("services", "default", "s") is None
    assert not st.ips.is_allocated(out["spec"]["clusterIP"])


# ---- services: allocation ---------------------------------------------------------------------


def test_cluster_ips_and_node_ports_are_allocated_honoured_and_released() -> None:
    st = make(service_cluster_ip_range="10.0.0.0/24", service_node_port_range="30000-30010")
    r = res(st, "services")
    a = st.api.create(r, "default", svc("a", type="NodePort")).obj
    ip = a["spec"]["clusterIP"]
    assert ip.startswith("10.0.0.") and ip not in ("10.0.0.0", "10.0.0.1", "10.0.0.255")
    assert a["spec"]["clusterIPs"] == [ip]
    assert 30000 <= a["spec"]["ports"][0]["nodePort"] <= 30010
    b = st.api.create(r, "default", svc("b", clusterIP="10.0.0.50")).obj
    assert b["spec"]["clusterIP"] == "10.0.0.50"
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", svc("c", clusterIP="10.0.0.50"))
    assert e.value.code == 422
    assert "failed to allocate IP 10.0.0.50: provided IP is already allocated" in e.value.message
    with pytest.raises(StatusError) as e:
        st.api.create(r, "default", svc("c", clusterIP="10.1.0.5"))
    assert "The range of valid IPs is 10.0.0.0/24" in e.value.message
    taken = a["spec"]["ports"][0]["nodePort"]
    with pytest.raises(StatusError) as e:
        st.api.create(
            r, "default", svc("d", type="NodePort", ports=[{"port": 80, "nodePort": taken}])
        )
    assert (
        f"spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated"
        in e.value.message
    )
    with pytest.raises(StatusError) as e:
        st.api.create(
            r, "default", svc("d", type="NodePort", ports=[{"port": 80, "nodePort": 31000}])
        )
    assert "The range of valid ports is 30000-30010" in e.value.message
    st.api.delete(r, "default", "a")
    assert not st.ips.is_allocated(ip) and not st.node_ports.is_allocated(taken)
    headless = st.api.create(r, "default", svc("h", clusterIP="None")).obj
    assert headless["spec"]["clusterIPs"] == ["None"]


def test_load_balancer_local_gets_a_health_check_node_port() -> None:
    st = make()
    r = res(st, "services")
    out = st.api.create(
        r, "default", svc("lb", type="LoadBalancer", externalTrafficPolicy="Local")
    ).obj
    hc = out["spec"]["healthCheckNodePort"]
    assert st.node_ports.is_allocated(hc)
    changed = st.api.patch(
        r, "default", "lb", "merge", b'{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}'
    )
    assert not st.node_ports.is_allocated(hc)
    assert "nodePort" not in changed.obj["spec"]["ports"][0] or not st.node_ports.is_allocated(
        out["spec"]["ports"][0]["nodePort"]
    )


# ---- namespaces --------------------------------------------------------------------------------


def test_initial_namespaces_and_the_name_label() -> None:
    st = make()
    names = [e.obj["metadata"]["name"] for e in st.store.sorted_entries("namespaces", None)]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    r = res(st, "namespaces")
    out = st.api.create(r, "", {"metadata": {"name": "x", "labels": {"a": "b"}}}).obj
    assert out["metadata"]["labels"] == {"a": "b", "kubernetes.io/metadata.name": "x"}
    out = st.api.patch(r, "", "x", "merge", b'{"metadata":{"labels":null}}').obj
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "x"}


def test_namespace_termination_empties_then_removes_it() -> None:
    st = make()
    ns, pods = res(st, "namespaces"), res(st, "pods")
    st.api.create(ns, "", {"metadata": {"name": "x"}})
    st.api.create(pods, "x", pod("a"))
    st.api.create(res(st, "services"), "x", svc("s"))
    out = st.api.delete(ns, "", "x")
    assert out["status"]["phase"] == "Terminating" and out["metadata"]["deletionTimestamp"]
    with pytest.raises(StatusError) as e:
        st.api.create(pods, "x", pod("b"))
    assert e.value.code == 403
    assert e.value.message == (
        'pods "b" is forbidden: unable to create new content in namespace x because it is '
        "being terminated"
    )
    controller = next(c for c in st.controllers if type(c).__name__ == "NamespaceController")
    assert controller.sweep("x")  # type: ignore[attr-defined]
    assert st.store.get("namespaces", "", "x") is None
    assert st.store.count("pods", "x") == 0 and st.store.count("services", "x") == 0


# ---- persistence -------------------------------------------------------------------------------


def test_everything_survives_a_restart_and_old_watches_get_410(tmp_path: Path) -> None:
    st = make(tmp_path)
    r = res(st, "services")
    a = st.api.create(r, "default", svc("a", type="NodePort")).obj
    st.api.create(res(st, "pods"), "default", pod("p"))
    st.api.delete(res(st, "pods"), "default", "p")
    rv = st.store.rv
    old_rv = rv - 2
    assert st.persistence is not None
    st.persistence.close()

    again = make(tmp_path)
    assert again.store.rv == rv  # deletes count too
    got = again.store.get("services", "default", "a")
    assert got is not None and got.obj == a
    assert again.ips.is_allocated(a["spec"]["clusterIP"])
    assert again.node_ports.is_allocated(a["spec"]["ports"][0]["nodePort"])
    with pytest.raises(StatusError) as e:
        again.api.watch(r, None, resource_version=str(old_rv))
    assert e.value.code == 410
    again.api.create(r, "default", svc("b"))
    assert again.store.rv == rv + 1
    names = [e.obj["metadata"]["name"] for e in again.store.sorted_entries("namespaces", None)]
    assert "default" in names


def test_store_load_restores_rows_and_counter() -> None:
    store = Store()
    store.load([("pods", "ns", "a", 7, b'{"metadata":{"name":"a","namespace":"ns"}}')], 9)
    assert store.rv == 9 and store.history_start_rv == 9
    got = store.get("pods", "ns", "a")
    assert got is not None and got.rv == 7


# ---- controllers that act on time ------------------------------------------------------------


async def test_termination_and_event_ttl_controllers_remove_objects_in_time() -> None:
    import asyncio

    st = ApiServerState(Config(event_ttl=0.3))
    await st.start()
    try:
        pods, events = res(st, "pods"), res(st, "events")
        st.api.create(pods, "default", pod("slow", nodeName="n1"))
        st.api.delete(pods, "default", "slow", {"gracePeriodSeconds": 1})
        st.api.create(
            events,
            "default",
            {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "slow"}},
        )
        await asyncio.sleep(0.6)
        assert st.store.get("events", "default", "e") is None  # TTL passed
        assert st.store.get("pods", "default", "slow") is not None  # grace not yet
        await asyncio.sleep(0.7)
        assert st.store.get("pods", "default", "slow") is None
    finally:
        await st.stop()


def test_a_new_kind_is_one_declaration() -> None:
    kind = ResourceInfo(
        group="weir.dev",
        version="v1alpha1",
        kind="BandwidthPolicy",
        plural="bandwidthpolicies",
        singular="bandwidthpolicy",
        namespaced=True,
        short_names=("bwp",),
        schema=False,
    )
    st = ApiServerState(Config(extra_resources=(kind,)))
    body = {"apiVersion": "weir.dev/v1alpha1", "kind": "BandwidthPolicy"}
    made = st.api.create(kind, "default", {**body, "metadata": {"name": "x"}, "spec": {"r": 1}})
    assert made.obj["spec"] == {"r": 1} and made.obj["metadata"]["generation"] == 1
    changed = st.api.patch(kind, "default", "x", "merge", b'{"spec":{"r":2}}').obj
    assert changed["spec"] == {"r": 2} and changed["metadata"]["generation"] == 2
    with pytest.raises(StatusError) as e:
        st.api.patch(kind, "default", "x", "strategic", b'{"spec":{"r":3}}')
    assert e.value.code == 415
    assert st.resources.lookup("weir.dev", "v1alpha1", "bandwidthpolicies") is kind
    assert "apis/weir.dev/v1alpha1" in st.openapi.docs


def test_garbage_collection_follows_owner_references(tmp_path: Path) -> None:
    st = make(tmp_path)
    svcs, pods = res(st, "services"), res(st, "pods")
    owner = st.api.create(svcs, "default", svc("owner")).obj
    other = st.api.create(svcs, "default", svc("other")).obj

    def owned(name: str, *owners: dict[str, Any]) -> dict[str, Any]:
        body = pod(name)
        body["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Service", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]}
            for o in owners
        ]  # fmt: skip
        return body

    st.api.create(pods, "default", owned("only", owner))
    st.api.create(pods, "default", owned("shared", owner, other))
    st.api.create(pods, "default", owned("orphaned", owner))
    assert st.persistence is not None
    st.persistence.close()
    st = make(tmp_path)  # the owner index is rebuilt from what was stored
    st.api.delete(svcs, "default", "owner")
    assert st.store.get("pods", "default", "only") is None
    assert st.store.get("pods", "default", "shared") is not None  # another owner lives
    st.api.create(svcs, "default", svc("third"))
    third = st.store.get("services", "default", "third")
    assert third is not None
    st.api.create(pods, "default", owned("kept", third.obj))
    st.api.delete(svcs, "default", "third", {"propagationPolicy": "Orphan"})
    assert st.store.get("pods", "default", "kept") is not None


def test_allocators_reserve_edges_fill_up_and_release() -> None:
    import random

    from weir_local.apiserver.allocators import (
        AllocationError,
        ClusterIPAllocator,
        NodePortAllocator,
    )

    ips = ClusterIPAllocator("10.0.0.0/29", rng=random.Random(1))  # hosts .1-.6; .1 reserved
    got = {ips.allocate() for _ in range(5)}
    assert got == {f"10.0.0.{i}" for i in range(2, 7)}
    with pytest.raises(AllocationError, match="range is full"):
        ips.allocate()
    with pytest.raises(AllocationError, match="provided IP is already allocated"):
        ips.allocate("10.0.0.1")
    with pytest.raises(AllocationError, match="not in the valid range"):
        ips.allocate("10.0.0.7")  # broadcast
    ips.release("10.0.0.4")
    assert ips.allocate() == "10.0.0.4"
    ports = NodePortAllocator("30000-30001")
    assert {ports.allocate(), ports.allocate()} == {30000, 30001}
    with pytest.raises(AllocationError, match="range is full"):
        ports.allocate()
    ports.release(30000)
    assert ports.allocate(30000) == 30000


def test_namespace_finalizers_in_spec_and_metadata_both_hold_it() -> None:
    st = make()
    ns = res(st, "namespaces")
    body = {"metadata": {"name": "x", "finalizers": ["example.com/meta"]}}
    body["spec"] = {"finalizers": ["example.com/spec"]}
    created = st.api.create(ns, "", body).obj
    assert created["spec"]["finalizers"] == ["example.com/spec", "kubernetes"]
    st.api.delete(ns, "", "x")
    controller = next(c for c in st.controllers if type(c).__name__ == "NamespaceController")
    assert controller.sweep("x")  # type: ignore[attr-defined]
    got = st.store.get("namespaces", "", "x")
    assert got is not None and got.obj["spec"]["finalizers"] == ["example.com/spec"]
    st.api.patch(ns, "", "x", "merge", b'{"metadata":{"finalizers":null}}')
    assert st.store.get("namespaces", "", "x") is not None  # the spec finalizer still holds
    st.api.set_namespace_finalizers("x", [])  # PUT namespaces/x/finalize
    assert st.store.get("namespaces", "", "x") is None
