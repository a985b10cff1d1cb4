"""The Mirror: which writes make weir-k8s equal the API, and only those."""

from __future__ import annotations

from weir_k8s_watcher.core import Mirror, Write


def test_put_writes_only_changes() -> None:
    m = Mirror()
    assert m.put("pod.x.a", b"1") == Write("pod.x.a", b"1")
    assert m.put("pod.x.a", b"1") is None
    assert m.put("pod.x.a", b"2") == Write("pod.x.a", b"2")


def test_delete_only_what_is_held() -> None:
    m = Mirror()
    assert m.delete("pod.x.a") is None
    m.put("pod.x.a", b"1")
    assert m.delete("pod.x.a") == Write("pod.x.a", None)
    assert m.delete("pod.x.a") is None


def test_resync_against_actual_bucket_contents() -> None:
    m = Mirror()
    # What the bucket really holds: one current, one stale, one garbage, one of another kind.
    m.load("pod", {"pod.x.same": b"s", "pod.x.stale": b"old", "pod.x.junk": b"\xc1"})
    m.load("service", {"service.x.web": b"w"})
    writes = m.resync("pod", {"pod.x.same": b"s", "pod.x.junk": b"fixed", "pod.x.new": b"n"})
    assert sorted(writes, key=lambda w: w.key) == [
        Write("pod.x.junk", b"fixed"),
        Write("pod.x.new", b"n"),
        Write("pod.x.stale", None),
    ]
    assert m.get("service.x.web") == b"w"  # other prefixes untouched
    assert m.resync("pod", {"pod.x.same": b"s", "pod.x.junk": b"fixed", "pod.x.new": b"n"}) == []


def test_prefixes_do_not_bleed() -> None:
    m = Mirror()
    m.load("node", {"node.a": b"1"})
    m.load("namespace", {"namespace.a": b"1"})
    assert m.resync("node", {}) == [Write("node.a", None)]
    assert m.get("namespace.a") == b"1"


def test_load_replaces_only_its_prefix() -> None:
    m = Mirror()
    m.put("pod.x.a", b"1")
    m.put("service.x.a", b"1")
    m.load("pod", {"pod.x.b": b"2"})
    assert m.get("pod.x.a") is None and m.get("pod.x.b") == b"2" and m.get("service.x.a") == b"1"


def test_forget_makes_the_next_put_write() -> None:
    m = Mirror()
    m.put("pod.x.a", b"1")
    m.forget("pod.x.a")
    assert m.put("pod.x.a", b"1") == Write("pod.x.a", b"1")
