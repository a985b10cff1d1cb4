"""Label and field selectors as kube-apiserver parses them from list and watch query strings.

Cases come from k8s.io/apimachinery/pkg/labels/selector_test.go and pkg/fields, the field
label conversions in pkg/apis/core/v1/conversion.go and the registries' selectable fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from weir.labels import LabelSelector, Operator, Requirement
from weir_local.apiserver.selectors import (
    FieldSelector,
    SelectorError,
    label_key_errors,
    label_value_errors,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)

NAME_REGEX_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_REGEX_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
SUBDOMAIN_REGEX_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement(key=key, operator=op, values=values)


IN, NOT_IN, EXISTS, ABSENT, GT, LT = (
    Operator.IN,
    Operator.NOT_IN,
    Operator.EXISTS,
    Operator.DOES_NOT_EXIST,
    Operator.GT,
    Operator.LT,
)

# --------------------------------------------------------------------------------------------
# Label selectors: parsing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("\rx", (req("x", EXISTS),)),
        ("a ", (req("a", EXISTS),)),
        ("x=a", (req("x", IN, "a"),)),
        ("x==a", (req("x", IN, "a"),)),
        ("x!=a", (req("x", NOT_IN, "a"),)),
        ("x=", (req("x", IN, ""),)),
        ("x= ", (req("x", IN, ""),)),
        ("x=,z= ", (req("x", IN, ""), req("z", IN, ""))),
        ("!x", (req("x", ABSENT),)),
        ("! x", (req("x", ABSENT),)),
        ("x>1", (req("x", GT, "1"),)),
        ("x>1,z<5", (req("x", GT, "1"), req("z", LT, "5"))),
        ("x<7", (req("x", LT, "7"),)),
        ("x>03", (req("x", GT, "03"),)),
        ("x=a,y!=b", (req("x", IN, "a"), req("y", NOT_IN, "b"))),
        (
            "x=a,y!=b,z in (h,i,j)",
            (req("x", IN, "a"), req("y", NOT_IN, "b"), req("z", IN, "h", "i", "j")),
        ),
        ("x in (abc,def)", (req("x", IN, "abc", "def"),)),
        ("x in (abc,)", (req("x", IN, "", "abc"),)),
        ("x in ()", (req("x", IN, ""),)),
        ("x notin ( )", (req("x", NOT_IN, ""),)),
        ("x notin (, a)", (req("x", NOT_IN, "", "a"),)),
        ("x in (a,,b)", (req("x", IN, "", "a", "b"),)),
        ("x in (b,a,b)", (req("x", IN, "a", "b"),)),
        ("foo  in\t (abc)", (req("foo", IN, "abc"),)),
        ("x notin\n (abc)", (req("x", NOT_IN, "abc"),)),
        ("x  notin\t\t\t(abc,def)", (req("x", NOT_IN, "abc", "def"),)),
        (
            "x notin (abc,def),bar,z in (),w",
            (
                req("bar", EXISTS),
                req("w", EXISTS),
                req("x", NOT_IN, "abc", "def"),
                req("z", IN, ""),
            ),
        ),
        ("x,y", (req("x", EXISTS), req("y", EXISTS))),
        ("y in (a),x", (req("x", EXISTS), req("y", IN, "a"))),
        ("a in (x,y,notin, z,in)", (req("a", IN, "in", "notin", "x", "y", "z"),)),
        ("notin=in", (req("notin", IN, "in"),)),
        ("in in (in)", (req("in", IN, "in"),)),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            (req("this-is-a-dns.domain.com/key-with-dash", EXISTS),),
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            (req("0.1.2.domain/99", NOT_IN, "10.10.100.1", "tick.tack.clock"),),
        ),
        ("app.kubernetes.io/name=web", (req("app.kubernetes.io/name", IN, "web"),)),
        ("x=a,x=b", (req("x", IN, "a"), req("x", IN, "b"))),
        ("x=a\x00,y", (req("x", IN, "a"),)),  # like Go's lexer, NUL ends the input
    ],
)
def test_label_selector_parses(text: str, expected: tuple[Requirement, ...]) -> None:
    selector = parse_label_selector(text)
    assert selector.match_expressions == expected
    assert dict(selector.match_labels) == {}


def test_label_selector_is_sorted_by_key_so_parsing_is_deterministic() -> None:
    assert parse_label_selector("x=a,a=x") == parse_label_selector("a=x,x=a")


def test_empty_label_selector_is_empty_and_matches_everything() -> None:
    selector = parse_label_selector("")
    assert selector.is_empty()
    assert selector.matches({})
    assert selector.matches({"x": "y"})


def test_label_selector_is_the_shared_type() -> None:
    assert isinstance(parse_label_selector("a=b"), LabelSelector)


# --------------------------------------------------------------------------------------------
# Label selectors: matching
# --------------------------------------------------------------------------------------------

FOO_BAZ = {"foo": "bar", "baz": "blah"}


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("", {"x": "y"}, True),
        ("x=y", {"x": "y"}, True),
        ("x=y,z=w", {"x": "y", "z": "w"}, True),
        ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
        ("notin=in", {"notin": "in"}, True),
        ("x", {"x": "z"}, True),
        ("!x", {"y": "z"}, True),
        ("x>1", {"x": "2"}, True),
        ("x<1", {"x": "0"}, True),
        ("x=z", {}, False),
        ("x=y", {"x": "z"}, False),
        ("x=y,z=w", {"x": "w", "z": "w"}, False),
        ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
        ("x", {"y": "z"}, False),
        ("!x", {"x": "z"}, False),
        ("x>1", {"x": "0"}, False),
        ("x<1", {"x": "2"}, False),
        ("foo=bar", FOO_BAZ, True),
        ("baz=blah", FOO_BAZ, True),
        ("foo=bar,baz=blah", FOO_BAZ, True),
        ("foo=blah", FOO_BAZ, False),
        ("baz=bar", FOO_BAZ, False),
        ("foo=bar,foobar=bar,baz=blah", FOO_BAZ, False),
        # != and notin match objects that lack the key, as kube does.
        ("x!=a", {}, True),
        ("x notin (a,b)", {"y": "a"}, True),
        ("x notin (a,b)", {"x": "b"}, False),
        ("x notin (a,b)", {"x": "c"}, True),
        ("x in (a,b)", {"x": "b"}, True),
        ("x in (a,b)", {}, False),
        # The empty value is a value.
        ("x=", {"x": ""}, True),
        ("x=", {}, False),
        ("x in ()", {"x": ""}, True),
        ("x in ()", {"x": "a"}, False),
        ("x notin ()", {"x": ""}, False),
        ("x notin ()", {}, True),
        ("x,!y", {"x": "", "z": "1"}, True),
        ("x,!y", {"x": "", "y": ""}, False),
        # Gt and Lt compare integers, and never match a label that is not one.
        ("x>9", {"x": "10"}, True),
        ("x<10", {"x": "9"}, True),
        ("x>1", {"x": "v2"}, False),
        ("x>1", {}, False),
        ("x=a,x=b", {"x": "a"}, False),
        ("tier in (frontend,backend),env!=prod", {"tier": "backend", "env": "dev"}, True),
        ("tier in (frontend,backend),env!=prod", {"tier": "backend", "env": "prod"}, False),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(text).matches(labels) is matches


# --------------------------------------------------------------------------------------------
# Label selectors: errors, worded as kube-apiserver words them
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x=a||y",
            'unable to parse requirement: values[0][x]: Invalid value: "a||y": '
            + VALUE_REGEX_ERROR,
        ),
        (
            "x=a,||y=b",
            'unable to parse requirement: <nil>: Invalid value: "||y": name part '
            + NAME_REGEX_ERROR,
        ),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        (">", "found '>', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a in (xyz),", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
        (
            "x nott in (y)",
            "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
        (
            "x>+3",
            f'unable to parse requirement: values[0][x]: Invalid value: "+3": {VALUE_REGEX_ERROR}',
        ),
        (
            "x<a",
            'unable to parse requirement: values[0]: Invalid value: "a": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x>1.5",
            'unable to parse requirement: values[0]: Invalid value: "1.5": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x>99999999999999999999",
            'unable to parse requirement: values[0]: Invalid value: "99999999999999999999": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x<-1",
            f'unable to parse requirement: values[0][x]: Invalid value: "-1": {VALUE_REGEX_ERROR}',
        ),
        (
            "x>-a",
            "unable to parse requirement: ["
            "values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' operators, the value must be an "
            f'integer, values[0][x]: Invalid value: "-a": {VALUE_REGEX_ERROR}]',
        ),
        (
            "a=$x",
            f'unable to parse requirement: values[0][a]: Invalid value: "$x": {VALUE_REGEX_ERROR}',
        ),
        (
            "a in (ok,-bad)",
            f'unable to parse requirement: values[0][a]: Invalid value: "-bad": '
            f"{VALUE_REGEX_ERROR}",
        ),
        (
            "-a",
            'unable to parse requirement: <nil>: Invalid value: "-a": name part '
            + NAME_REGEX_ERROR,
        ),
        (
            "a/b/c=d",
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key '
            f"{NAME_REGEX_ERROR} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')",
        ),
        (
            "a/=b",
            'unable to parse requirement: <nil>: Invalid value: "a/": name part must be '
            f"non-empty; name part {NAME_REGEX_ERROR}",
        ),
        (
            "/a",
            'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be '
            "non-empty",
        ),
        (
            "Ab.c/x=1",
            'unable to parse requirement: <nil>: Invalid value: "Ab.c/x": prefix part '
            f"{SUBDOMAIN_REGEX_ERROR}",
        ),
    ],
)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert str(caught.value) == message


def test_label_key_and_value_length_limits() -> None:
    assert parse_label_selector("k=" + "v" * 63).match_expressions[0].values == ("v" * 63,)
    with pytest.raises(SelectorError, match="must be no more than 63 bytes"):
        parse_label_selector("k=" + "v" * 64)
    assert parse_label_selector("n" * 63).match_expressions[0].key == "n" * 63
    with pytest.raises(SelectorError, match="name part must be no more than 63 bytes"):
        parse_label_selector("n" * 64)
    prefix = ".".join(["a" * 63] * 4)[:253]
    assert parse_label_selector(f"{prefix}/n").match_expressions[0].key == f"{prefix}/n"
    with pytest.raises(SelectorError, match="prefix part must be no more than 253 bytes"):
        parse_label_selector(f"{prefix}a/n")


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("app", True),
        ("1foo", True),
        ("1234", True),
        ("a.b_c-d", True),
        ("example.com/MyName", True),
        ("k8s.io/x", True),
        ("a", True),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("a b", False),
        ("EXAMPLE.com/x", False),
        ("a" * 254, False),
        ("x/y/z", False),
    ],
)
def test_label_key_validation(key: str, valid: bool) -> None:
    assert (label_key_errors(key) == []) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("a", True), ("My_value-1.2", True), ("-a", False), ("a_", False), ("a b", False)],
)
def test_label_value_validation(value: str, valid: bool) -> None:
    assert (label_value_errors(value) == []) is valid


# --------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------


def pod(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "containers": [{"name": "c", "image": "nginx"}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
        },
    }
    for path, value in overrides.items():
        node = obj
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return obj


@pytest.mark.parametrize(
    ("text", "obj", "matches"),
    [
        ("", pod(), True),
        ("metadata.name=web-1", pod(), True),
        ("metadata.name==web-1", pod(), True),
        ("metadata.name!=web-1", pod(), False),
        ("metadata.name=web-2", pod(), False),
        ("metadata.namespace=default", pod(), True),
        ("metadata.namespace=kube-system", pod(), False),
        ("spec.nodeName=node-a", pod(), True),
        ("spec.nodeName=node-b", pod(), False),
        # The kubelet's and scheduler's selectors: unscheduled pods have an empty nodeName.
        ("spec.nodeName=", pod(spec__nodeName=None), True),
        ("spec.nodeName=", pod(), False),
        ("spec.nodeName!=", pod(), True),
        ("spec.nodeName!=", pod(spec__nodeName=None), False),
        # Old clients' spelling of spec.nodeName.
        ("spec.host=node-a", pod(), True),
        ("spec.restartPolicy=Always", pod(), True),
        ("spec.restartPolicy=Never", pod(), False),
        ("spec.schedulerName=default-scheduler", pod(), True),
        ("spec.serviceAccountName=default", pod(), True),
        ("spec.hostNetwork=false", pod(), True),
        ("spec.hostNetwork=true", pod(), False),
        ("spec.hostNetwork=true", pod(spec__hostNetwork=True), True),
        ("spec.hostNetwork!=true", pod(spec__hostNetwork=False), True),
        ("status.phase=Running", pod(), True),
        ("status.phase!=Running", pod(), False),
        ("status.phase!=Succeeded,status.phase!=Failed", pod(), True),
        ("status.phase=Pending", pod(status__phase="Pending"), True),
        ("status.phase=", pod(status=None), True),
        ("status.podIP=10.0.0.5", pod(), True),
        # status.podIP is podIPs[0] (the internal pod keeps only podIPs).
        ("status.podIP=10.0.0.9", pod(status__podIPs=[{"ip": "10.0.0.9"}]), True),
        ("status.podIP=10.0.0.5", pod(status__podIPs=None), True),
        ("status.podIP=", pod(status__podIPs=None, status__podIP=None), True),
        # Accepted, but not in the pod's field set: it always reads as "".
        ("status.podIPs=", pod(), True),
        ("status.podIPs=10.0.0.5", pod(), False),
        ("status.nominatedNodeName=", pod(), True),
        ("status.nominatedNodeName=n", pod(status__nominatedNodeName="n"), True),
        ("metadata.name=web-1,spec.nodeName=node-a,status.phase=Running", pod(), True),
        ("metadata.name=web-1,spec.nodeName=node-b", pod(), False),
        # Values are compared as strings, after unescaping.
        ("metadata.name=a\\,b", pod(metadata__name="a,b"), True),
        ("metadata.name=a\\=b", pod(metadata__name="a=b"), True),
        ("metadata.name=a\\\\b", pod(metadata__name="a\\b"), True),
        ("metadata.name=a\\,b,spec.nodeName=node-a", pod(metadata__name="a,b"), True),
        # Empty terms are skipped.
        (",metadata.name=web-1,", pod(), True),
    ],
)
def test_pod_field_selector(text: str, obj: dict[str, Any], matches: bool) -> None:
    assert parse_field_selector(text, "Pod").matches(obj) is matches


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-a"},
    "spec": {"podCIDR": "10.0.0.0/24"},
}
NAMESPACE = {"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}}
SERVICE = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP", "ports": [{"port": 80}]},
}
EVENT = {
    "metadata": {"name": "web-1.17a", "namespace": "shop"},
    "involvedObject": {
        "kind": "Pod",
        "namespace": "shop",
        "name": "web-1",
        "uid": "u-1",
        "apiVersion": "v1",
        "resourceVersion": "42",
        "fieldPath": "spec.containers{c}",
    },
    "reason": "Scheduled",
    "type": "Normal",
    "source": {"component": "default-scheduler"},
    "reportingComponent": "",
}
EVENT_FROM_CONTROLLER = {
    "metadata": {"name": "e2", "namespace": "shop"},
    "involvedObject": {"kind": "Node", "name": "node-a"},
    "reason": "NodeReady",
    "type": "Normal",
    "reportingComponent": "node-controller",
}


@pytest.mark.parametrize(
    ("kind", "text", "obj", "matches"),
    [
        ("Node", "metadata.name=node-a", NODE, True),
        ("Node", "metadata.name=node-b", NODE, False),
        ("Node", "spec.unschedulable=false", NODE, True),
        ("Node", "spec.unschedulable=true", NODE, False),
        ("Node", "spec.unschedulable=true", {**NODE, "spec": {"unschedulable": True}}, True),
        ("Namespace", "metadata.name=kube-system", NAMESPACE, True),
        ("Namespace", "status.phase=Active", NAMESPACE, True),
        ("Namespace", "status.phase=Terminating", NAMESPACE, False),
        ("Service", "metadata.name=web,metadata.namespace=shop", SERVICE, True),
        ("Service", "spec.clusterIP=10.96.0.10", SERVICE, True),
        ("Service", "spec.clusterIP!=None", SERVICE, True),
        ("Service", "spec.type=ClusterIP", SERVICE, True),
        ("Service", "spec.type=NodePort", SERVICE, False),
        ("Event", "involvedObject.kind=Pod,involvedObject.name=web-1", EVENT, True),
        ("Event", "involvedObject.namespace=shop", EVENT, True),
        ("Event", "involvedObject.uid=u-1", EVENT, True),
        ("Event", "involvedObject.apiVersion=v1", EVENT, True),
        ("Event", "involvedObject.resourceVersion=42", EVENT, True),
        ("Event", "involvedObject.fieldPath=spec.containers{c}", EVENT, True),
        ("Event", "reason=Scheduled", EVENT, True),
        ("Event", "reason!=Scheduled", EVENT, False),
        ("Event", "type=Warning", EVENT, False),
        ("Event", "source=default-scheduler", EVENT, True),
        ("Event", "reportingComponent=", EVENT, True),
        ("Event", "metadata.namespace=shop,metadata.name=web-1.17a", EVENT, True),
        # source falls back to reportingComponent when source.component is empty.
        ("Event", "source=node-controller", EVENT_FROM_CONTROLLER, True),
        ("Event", "reportingComponent=node-controller", EVENT_FROM_CONTROLLER, True),
        ("Event", "involvedObject.fieldPath=", EVENT_FROM_CONTROLLER, True),
        ("EndpointSlice", "metadata.name=web-abc", {"metadata": {"name": "web-abc"}}, True),
        ("EndpointSlice", "metadata.namespace=shop", {"metadata": {"namespace": "x"}}, False),
        ("NetworkPolicy", "metadata.name=deny", {"metadata": {"name": "deny"}}, True),
        ("NetworkPolicy", "metadata.namespace!=shop", {"metadata": {"namespace": "x"}}, True),
    ],
)
def test_field_selector_per_kind(kind: str, text: str, obj: dict[str, Any], matches: bool) -> None:
    assert parse_field_selector(text, kind).matches(obj) is matches


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (
            "Pod",
            {
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            },
        ),
        ("Node", {"metadata.name", "spec.unschedulable"}),
        ("Namespace", {"metadata.name", "status.phase"}),
        ("Service", {"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"}),
        (
            "Event",
            {
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            },
        ),
        ("EndpointSlice", {"metadata.name", "metadata.namespace"}),
        ("NetworkPolicy", {"metadata.name", "metadata.namespace"}),
    ],
)
def test_selectable_fields_are_kubes(kind: str, fields: set[str]) -> None:
    assert selectable_fields(kind) == fields
    for field in fields:
        parse_field_selector(f"{field}=x", kind)


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("Pod", "spec.containers=x", "field label not supported: spec.containers"),
        ("Pod", "metadata.labels=x", "field label not supported: metadata.labels"),
        ("Pod", "status.hostIP=1.2.3.4", "field label not supported: status.hostIP"),
        ("Node", "metadata.namespace=default", "field label not supported: metadata.namespace"),
        ("Node", "spec.podCIDR=x", "field label not supported: spec.podCIDR"),
        ("Namespace", "metadata.namespace=x", "field label not supported: metadata.namespace"),
        ("Service", "spec.ports=x", "field label not supported: spec.ports"),
        ("Event", "message=x", "field label not supported: message"),
        # Whitespace is part of the field name.
        ("Pod", "metadata.name = x", "field label not supported: metadata.name "),
        (
            "EndpointSlice",
            "addressType=IPv4",
            '"addressType" is not a known field selector: only "metadata.name", '
            '"metadata.namespace"',
        ),
        (
            "NetworkPolicy",
            "spec.podSelector=x",
            '"spec.podSelector" is not a known field selector: only "metadata.name", '
            '"metadata.namespace"',
        ),
        (
            "Pod",
            "metadata.name",
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        ("Pod", "a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("Pod", "metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
        ("Pod", "metadata.name=a\\,b\\", "invalid field selector: invalid escape sequence: \\"),
        ("Pod", "metadata.name=a\\b", "invalid field selector: invalid escape sequence: \\b"),
        # Syntax errors are found before unsupported fields, as kube parses first.
        (
            "Pod",
            "bogus=1,metadata.name=a=b",
            "invalid field selector: unescaped character in value: 61",
        ),
    ],
)
def test_field_selector_errors(kind: str, text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, kind)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", ()),
        ("metadata.name=a", (("metadata.name", "=", "a"),)),
        ("metadata.name==a", (("metadata.name", "=", "a"),)),
        ("metadata.name!=a", (("metadata.name", "!=", "a"),)),
        ("spec.nodeName=", (("spec.nodeName", "=", ""),)),
        ("spec.host=n", (("spec.nodeName", "=", "n"),)),
        ("metadata.name=a\\,b\\=c\\\\d", (("metadata.name", "=", "a,b=c\\d"),)),
        (
            "status.phase=Running,metadata.name=a",
            (("metadata.name", "=", "a"), ("status.phase", "=", "Running")),
        ),
    ],
)
def test_field_selector_terms(text: str, terms: tuple[tuple[str, str, str], ...]) -> None:
    selector = parse_field_selector(text, "Pod")
    assert selector == FieldSelector(kind="Pod", terms=terms)
    assert selector.is_empty() is (terms == ())


def test_field_selector_operator_at_first_position_wins() -> None:
    with pytest.raises(SelectorError, match="unescaped character in value: 61"):
        parse_field_selector("metadata.name!==a", "Pod")
    selector = parse_field_selector("metadata.name!=\\=a", "Pod")
    assert selector.terms == (("metadata.name", "!=", "=a"),)


def test_field_selector_on_missing_nested_object_reads_empty() -> None:
    selector = parse_field_selector("spec.nodeName=,status.phase=", "Pod")
    assert selector.matches({"metadata": {"name": "x"}})
    assert selector.matches({"metadata": {"name": "x"}, "spec": None, "status": "odd"})
