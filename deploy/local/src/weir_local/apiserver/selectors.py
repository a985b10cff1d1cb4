"""Label and field selectors in their string form, as list and watch requests carry them.

`parse_label_selector` follows k8s.io/apimachinery/pkg/labels (lexer, grammar, key and value
validation and the error texts the API server answers 400 with) and yields the shared
`weir.labels.LabelSelector`, so "matches" has one meaning across Weir. `parse_field_selector`
follows k8s.io/apimachinery/pkg/fields plus each kind's field-label conversion and selectable
field set (pkg/apis/core/v1/conversion.go, pkg/registry/core/*/strategy.go).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, Final

from weir.labels import LabelSelector, Operator, Requirement


class SelectorError(ValueError):
    """A selector that cannot be parsed or names an unsupported field; the server answers 400."""


# --------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------


class _Tok(Enum):
    END = auto()
    CLOSE_PAR = auto()
    COMMA = auto()
    NOT = auto()  # "!", i.e. DoesNotExist
    DOUBLE_EQUALS = auto()
    EQUALS = auto()
    GREATER = auto()
    IDENTIFIER = auto()
    IN = auto()
    LESS = auto()
    NOT_EQUALS = auto()
    NOT_IN = auto()
    OPEN_PAR = auto()


_SYMBOLS: Final[Mapping[str, _Tok]] = {
    ")": _Tok.CLOSE_PAR,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER,
    "<": _Tok.LESS,
    "!=": _Tok.NOT_EQUALS,
    "(": _Tok.OPEN_PAR,
}
_KEYWORDS: Final[Mapping[str, _Tok]] = {"in": _Tok.IN, "notin": _Tok.NOT_IN}
_SPECIAL_CHARS: Final = frozenset("=!(),<>")
_WHITESPACE: Final = frozenset(" \t\r\n")
# "=" and "==" are In with one value and "!=" is NotIn with one value: the same matching
# rules as kube's Equals, DoubleEquals and NotEquals.
_OPERATORS: Final[Mapping[_Tok, Operator]] = {
    _Tok.IN: Operator.IN,
    _Tok.NOT_IN: Operator.NOT_IN,
    _Tok.EQUALS: Operator.IN,
    _Tok.DOUBLE_EQUALS: Operator.IN,
    _Tok.NOT_EQUALS: Operator.NOT_IN,
    _Tok.GREATER: Operator.GT,
    _Tok.LESS: Operator.LT,
}
# The order kube lists them in "expected: ..." messages (selection.Operator values).
_BINARY_OPERATORS: Final = "in, notin, =, ==, !=, gt, lt"

_Token = tuple[_Tok, str]


def _lex(text: str) -> list[_Token]:
    """Tokens up to and including END. Like the Go lexer, a NUL byte ends the input."""
    text = text.split("\x00", 1)[0]
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            tokens.append((_Tok.END, ""))
            return tokens
        scan = _scan_symbol if text[pos] in _SPECIAL_CHARS else _scan_word
        token, pos = scan(text, pos)
        tokens.append(token)


def _scan_symbol(text: str, pos: int) -> tuple[_Token, int]:
    """The longest operator starting at pos ("!=" beats "!", "==" beats "=")."""
    best: _Token | None = None
    buffer = ""
    while pos < len(text) and text[pos] in _SPECIAL_CHARS:
        buffer += text[pos]
        if buffer not in _SYMBOLS:
            break
        best = (_SYMBOLS[buffer], buffer)
        pos += 1
    # Every single special character is itself a token, so `best` is always set.
    assert best is not None
    return best, pos


def _scan_word(text: str, pos: int) -> tuple[_Token, int]:
    start = pos
    while pos < len(text) and text[pos] not in _SPECIAL_CHARS and text[pos] not in _WHITESPACE:
        pos += 1
    word = text[start:pos]
    return (_KEYWORDS.get(word, _Tok.IDENTIFIER), word), pos


@dataclass(slots=True)
class _LabelParser:
    """Recursive descent over the token list, as labels.Parser does it."""

    tokens: list[_Token]
    position: int = 0

    def lookahead(self, *, values: bool) -> _Token:
        return _as_value(self.tokens[self.position], values=values)

    def consume(self, *, values: bool) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return _as_value(token, values=values)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(values=True)
            if tok is _Tok.END:
                return requirements
            if tok not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.parse_requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            tok, lit = self.consume(values=True)
            if tok is _Tok.END:
                return requirements
            if tok is not _Tok.COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            next_tok, next_lit = self.lookahead(values=True)
            if next_tok not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise SelectorError(f"found '{next_lit}', expected: identifier after ','")

    def parse_requirement(self) -> Requirement:
        negated = False
        tok, key = self.consume(values=True)
        if tok is _Tok.NOT:
            negated = True
            tok, key = self.consume(values=True)
        if tok is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{key}', expected: identifier")
        if errors := label_key_errors(key):
            raise SelectorError(f"<nil>: Invalid value: {_go_quote(key)}: {'; '.join(errors)}")
        if negated:
            return Requirement(key=key, operator=Operator.DOES_NOT_EXIST)
        if self.lookahead(values=True)[0] in (_Tok.END, _Tok.COMMA):
            return Requirement(key=key, operator=Operator.EXISTS)
        operator, set_based = self.parse_operator()
        raw = self.parse_values() if set_based else [self.parse_exact_value()]
        # kube keeps values as a sorted set and reports errors by index into it.
        values = sorted(set(raw))
        _check_values(key, operator, values)
        return Requirement(key=key, operator=operator, values=tuple(values))

    def parse_operator(self) -> tuple[Operator, bool]:
        """The operator, and whether a parenthesised value set follows it."""
        tok, lit = self.consume(values=False)
        if tok not in _OPERATORS:
            raise SelectorError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        return _OPERATORS[tok], tok in (_Tok.IN, _Tok.NOT_IN)

    def parse_values(self) -> list[str]:
        tok, lit = self.consume(values=True)
        if tok is not _Tok.OPEN_PAR:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(values=True)
        if tok is _Tok.CLOSE_PAR:
            # "x in ()" is the set holding the empty value.
            self.consume(values=True)
            return [""]
        if tok not in (_Tok.IDENTIFIER, _Tok.COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self.parse_identifiers()
        self.consume(values=True)  # the ")" that parse_identifiers stopped at
        return values

    def parse_identifiers(self) -> list[str]:
        """A comma separated list whose items may be empty: "(a,,b)", "(,a)", "(a,)"."""
        values: list[str] = []
        while True:
            tok, lit = self.consume(values=True)
            if tok is _Tok.IDENTIFIER:
                values.append(lit)
                next_tok, next_lit = self.lookahead(values=True)
                if next_tok is _Tok.CLOSE_PAR:
                    return values
                if next_tok is not _Tok.COMMA:
                    raise SelectorError(f"found '{next_lit}', expected: ',' or ')'")
            elif tok is _Tok.COMMA:
                if not values:
                    values.append("")
                next_tok, _ = self.lookahead(values=True)
                if next_tok is _Tok.CLOSE_PAR:
                    values.append("")
                    return values
                if next_tok is _Tok.COMMA:
                    values.append("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> str:
        tok, _ = self.lookahead(values=True)
        if tok in (_Tok.END, _Tok.COMMA):
            return ""  # "a=" selects objects whose label a is empty
        tok, lit = self.consume(values=True)
        if tok is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{lit}', expected: identifier")
        return lit


def _as_value(token: _Token, *, values: bool) -> _Token:
    """Where a value is expected, "in" and "notin" are plain words."""
    if values and token[0] in (_Tok.IN, _Tok.NOT_IN):
        return (_Tok.IDENTIFIER, token[1])
    return token


_INT64_RE: Final = re.compile(r"[+-]?[0-9]+")


def _is_int64(text: str) -> bool:
    """strconv.ParseInt(text, 10, 64) succeeds."""
    return bool(_INT64_RE.fullmatch(text)) and -(2**63) <= int(text) < 2**63


def _check_values(key: str, operator: Operator, values: list[str]) -> None:
    """The value checks of labels.NewRequirement, with its field paths and aggregation."""
    errors: list[str] = []
    if operator in (Operator.GT, Operator.LT):
        errors += [
            f"values[{i}]: Invalid value: {_go_quote(v)}: "
            "for 'Gt', 'Lt' operators, the value must be an integer"
            for i, v in enumerate(values)
            if not _is_int64(v)
        ]
    for i, value in enumerate(values):
        if problems := label_value_errors(value):
            errors.append(
                f"values[{i}][{key}]: Invalid value: {_go_quote(value)}: {'; '.join(problems)}"
            )
    if len(errors) == 1:
        raise SelectorError(errors[0])
    if errors:
        raise SelectorError("[" + ", ".join(errors) + "]")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h,i>1` into a LabelSelector. '' matches all.

    Every term becomes a match expression (`a=b` is `a In (b)`, `a!=b` is `a NotIn (b)`),
    sorted by key as kube sorts them; `match_labels` stays empty.
    """
    requirements = _LabelParser(_lex(text)).parse()
    requirements.sort(key=lambda r: r.key)
    return LabelSelector(match_expressions=tuple(requirements))


# --- label key and value validation (k8s.io/apimachinery/pkg/api/validate/content) ----------

_LABEL_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT: Final = f"({_LABEL_NAME_FMT})?"
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_LABEL_NAME_RE: Final = re.compile(_LABEL_NAME_FMT)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)
_LABEL_NAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_NAME_EXAMPLES: Final = ("MyName", "my.name", "123-abc")


def _regex_error(message: str, regex: str, *examples: str) -> str:
    """content.RegexError, including its doubled spaces before "or"."""
    if not examples:
        return f"{message} (regex used for validation is '{regex}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


def _label_name_regex_error() -> str:
    return _regex_error(_LABEL_NAME_MSG, _LABEL_NAME_FMT, *_NAME_EXAMPLES)


def _max_len_error(limit: int) -> str:
    return f"must be no more than {limit} bytes"


def _dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value.encode()) > 253:
        errors.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def label_key_errors(key: str) -> list[str]:
    """Why `key` is not a label key (qualified name); [] if it is one."""
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a valid label key "
            + _label_name_regex_error()
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errors: list[str] = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + e for e in _dns1123_subdomain_errors(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errors.append("name part " + _max_len_error(63))
    if not _LABEL_NAME_RE.fullmatch(name):
        errors.append(
            "name part " + _regex_error(_LABEL_NAME_MSG, _LABEL_NAME_FMT, *_NAME_EXAMPLES)
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a label value; [] if it is one (the empty string is)."""
    errors = []
    if len(value.encode()) > 63:
        errors.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


def _go_quote(text: str) -> str:
    """Close enough to Go's %q for messages."""
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------

_Extractor = Callable[[Mapping[str, Any]], str]


def _get(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _text(path: str) -> _Extractor:
    """A string field; absent (or null) reads as ""."""

    def extract(obj: Mapping[str, Any]) -> str:
        value = _get(obj, path)
        return "" if value is None else _render(value)

    return extract


def _flag(path: str) -> _Extractor:
    """A bool field; absent reads as "false" (the Go zero value)."""

    def extract(obj: Mapping[str, Any]) -> str:
        return "true" if _get(obj, path) is True else "false"

    return extract


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pod_ip(obj: Mapping[str, Any]) -> str:
    # The internal pod keeps only podIPs; v1 status.podIP becomes podIPs[0] when podIPs is empty.
    ips = _get(obj, "status.podIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return _render(ips[0].get("ip") or "")
    return _text("status.podIP")(obj)


def _event_source(obj: Mapping[str, Any]) -> str:
    return _text("source.component")(obj) or _text("reportingComponent")(obj)


def _always_empty(_obj: Mapping[str, Any]) -> str:
    return ""


_NAME: Final[Mapping[str, _Extractor]] = {"metadata.name": _text("metadata.name")}
_NAME_NAMESPACE: Final[Mapping[str, _Extractor]] = {
    **_NAME,
    "metadata.namespace": _text("metadata.namespace"),
}

# The fields each kind's field-label conversion accepts, with how the registry computes their
# value. Kinds without a conversion function accept only metadata.name and metadata.namespace.
_SELECTABLE: Final[Mapping[str, Mapping[str, _Extractor]]] = {
    "Pod": {
        **_NAME_NAMESPACE,
        "spec.nodeName": _text("spec.nodeName"),
        "spec.restartPolicy": _text("spec.restartPolicy"),
        "spec.schedulerName": _text("spec.schedulerName"),
        "spec.serviceAccountName": _text("spec.serviceAccountName"),
        "spec.hostNetwork": _flag("spec.hostNetwork"),
        "status.phase": _text("status.phase"),
        "status.podIP": _pod_ip,
        # Accepted by the conversion but absent from the pod's field set: always "".
        "status.podIPs": _always_empty,
        "status.nominatedNodeName": _text("status.nominatedNodeName"),
    },
    "Node": {**_NAME, "spec.unschedulable": _flag("spec.unschedulable")},
    "Namespace": {**_NAME, "status.phase": _text("status.phase")},
    "Service": {
        **_NAME_NAMESPACE,
        "spec.clusterIP": _text("spec.clusterIP"),
        "spec.type": _text("spec.type"),
    },
    "Event": {
        **_NAME_NAMESPACE,
        **{
            f"involvedObject.{part}": _text(f"involvedObject.{part}")
            for part in (
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            )
        },
        "reason": _text("reason"),
        "reportingComponent": _text("reportingComponent"),
        "source": _event_source,
        "type": _text("type"),
    },
}
# Old v1 clients still send spec.host for pods.
_ALIASES: Final[Mapping[str, Mapping[str, str]]] = {"Pod": {"spec.host": "spec.nodeName"}}


def selectable_fields(kind: str) -> frozenset[str]:
    """The field names `kind` accepts in a field selector."""
    return frozenset(_SELECTABLE.get(kind, _NAME_NAMESPACE))


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of `field=value` / `field!=value` terms over one kind's supported fields."""

    kind: str
    terms: tuple[tuple[str, str, str], ...]  # (field path, "=" or "!=", value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        fields = _SELECTABLE.get(self.kind, _NAME_NAMESPACE)
        for field, op, value in self.terms:
            have = fields.get(field, _always_empty)(obj)
            if (have == value) != (op == "="):
                return False
        return True

    def is_empty(self) -> bool:
        return not self.terms


_TERM_OPERATORS: Final = ("!=", "==", "=")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped with a backslash."""
    terms: list[str] = []
    start = 0
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """(lhs, operator, rhs) at the first operator; the field name cannot be escaped."""
    for i in range(len(term)):
        for op in _TERM_OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    """fields.UnescapeValue: `\\\\`, `\\,` and `\\=` only; bare `,` or `=` is an error."""
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go prints the rune with %v, i.e. as its code point.
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ord(char)}"
            )
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _convert_field(kind: str, field: str) -> str:
    """The kind's field-label conversion: the canonical field name, or the kube error."""
    field = _ALIASES.get(kind, {}).get(field, field)
    if kind not in _SELECTABLE:
        if field not in _NAME_NAMESPACE:
            raise SelectorError(
                f'"{field}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
    elif field not in _SELECTABLE[kind]:
        raise SelectorError(f"field label not supported: {field}")
    return field


def parse_field_selector(text: str, kind: str) -> FieldSelector:
    """Parse `metadata.name=x,spec.nodeName!=` for `kind`; unsupported fields raise SelectorError.

    Values may be empty and use `\\,`, `\\=` and `\\\\` escapes; whitespace is significant,
    as in kube. Syntax errors win over unsupported fields, as kube parses before converting.
    """
    parsed: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        parsed.append((field, "!=" if op == "!=" else "=", _unescape(raw)))
    terms = tuple((_convert_field(kind, field), op, value) for field, op, value in parsed)
    return FieldSelector(kind=kind, terms=terms)
