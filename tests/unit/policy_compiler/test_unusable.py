"""Policies Weir cannot fully use: reported once per change, fail closed, the rest in force; the
Event that reports them; the cookies that name every verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from weir_policy_compiler.cookies import CookieBook, cookie_of
from weir_policy_compiler.core import Report
from weir_policy_compiler.events import MESSAGE_LIMIT, REASON, event_body, event_name

from tests.unit.policy_compiler.harness import model_cluster

IPV6_ONLY: dict[str, Any] = {
    "metadata": {"name": "v6", "namespace": "x"},
    "spec": {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]},
            {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
        ],
    },
}


def test_an_ipv6_block_is_reported_contributes_nothing_and_the_policy_still_isolates() -> None:
    c = model_cluster()
    c.apply_policy(
        {
            "metadata": {"name": "fine", "namespace": "y"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}]},
        }
    )
    c.apply_policy(IPV6_ONLY)
    c.sync()
    (report,) = c.compiler.take_reports()
    assert (report.namespace, report.name, report.uid) == ("x", "v6", "uid-v6")
    assert len(report.problems) == 1 and "IPv6" in report.problems[0]
    assert c.compiler.unusable_policies == 1
    # Fail closed: x/a is isolated; only x/b gets in (the usable rule), not "everyone".
    assert not c.reaches("y/a", "x/a", 80, "TCP") and not c.reaches("x/c", "x/a", 80, "TCP")
    assert c.reaches("x/b", "x/a", 80, "TCP")
    # Every other policy stays in force.
    assert c.reaches("x/c", "y/a", 80, "TCP") and c.endpoint("y/a").ingress.enforced


def test_reported_once_per_change_and_again_when_fixed() -> None:
    c = model_cluster()
    c.apply_policy(IPV6_ONLY)
    assert len(c.compiler.take_reports()) == 1
    c.apply_policy({**IPV6_ONLY, "metadata": {**IPV6_ONLY["metadata"], "resourceVersion": "7"}})
    assert c.compiler.take_reports() == []  # same problems: nothing new to say
    c.apply_policy(
        {
            "metadata": {"name": "v6", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": []},
        }
    )
    (fixed,) = c.compiler.take_reports()
    assert fixed.problems == () and c.compiler.unusable_policies == 0
    c.apply_policy(IPV6_ONLY)
    c.delete_policy("x", "v6")
    assert len(c.compiler.take_reports()) == 1 and c.compiler.unusable_policies == 0


def test_an_unusable_port_leaves_the_rule_allowing_nothing() -> None:
    c = model_cluster()
    c.apply_policy(
        {
            "metadata": {"name": "bad-port", "namespace": "x"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"ports": [{"port": "Not_Valid"}]}],
            },
        }
    )
    c.sync()
    assert c.compiler.take_reports()[0].problems[0].startswith("spec.ingress[0].ports[0]")
    assert not c.reaches("x/b", "x/a", 80, "TCP") and not c.reaches("x/b", "x/a", 81, "TCP")


REPORT = Report(
    "x",
    "v6",
    "uid-1",
    "42",
    ("spec.ingress[0].from[0]: ipBlock.cidr 2001:db8::/32 is IPv6; Weir's datapath is IPv4-only",),
)


def test_the_event_names_the_policy_and_what_is_wrong() -> None:
    body = event_body(REPORT, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), instance="pc-0")
    assert body["involvedObject"] == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "namespace": "x",
        "name": "v6",
        "uid": "uid-1",
        "resourceVersion": "42",
    }
    assert body["metadata"]["namespace"] == "x" and body["metadata"]["name"].startswith("v6.")
    assert (body["type"], body["reason"]) == ("Warning", REASON)
    assert "IPv6" in body["message"] and "still isolates" in body["message"]
    assert body["firstTimestamp"] == "2026-01-02T03:04:05Z" and body["count"] == 1
    assert body["source"] == {"component": "weir-policy-compiler"}


def test_the_event_name_is_stable_per_policy_and_problems() -> None:
    assert event_name(REPORT) == event_name(REPORT)
    other = Report("x", "v6", "uid-1", "43", ("something else",))
    assert event_name(other) != event_name(REPORT)
    long = Report("x", "p" * 253, "u", "1", ("x",))
    assert len(event_name(long)) <= 253


def test_a_long_message_is_cut() -> None:
    many = Report("x", "p", "u", "1", tuple(f"problem {i} " + "x" * 80 for i in range(40)))
    assert len(event_body(many, now=datetime.now(UTC), instance="i")["message"]) == MESSAGE_LIMIT


def test_cookies_are_the_crc32_of_their_text() -> None:
    import zlib

    text = "x/allow-web: ingress rule 1"
    assert cookie_of(text) == zlib.crc32(text.encode())
    assert cookie_of(text) != cookie_of("x/allow-web: ingress rule 2")
    assert cookie_of(text) != cookie_of("x/allow-web: egress rule 1")


def test_a_cookie_collision_names_both_rules() -> None:
    # "plumless" and "buckeroo" are a known CRC32 collision.
    assert cookie_of("plumless") == cookie_of("buckeroo")
    book = CookieBook()
    first = book.add("plumless")
    assert book.add("buckeroo") == first
    assert book.add("plumless") == first
    assert book.names == {first: "plumless | buckeroo"}
