"""Format checks for names, labels and ports, worded exactly as Kubernetes words them.

Each check returns the list of problems (empty when the value is fine), as the functions of
k8s.io/apimachinery/pkg/util/validation and .../api/validate/content do; callers turn each
message into a `FieldError`. The regular expressions and messages are Kubernetes facts and are
kept verbatim because users compare them with what a real cluster prints.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
LABEL_NAME_MAX = 63
PORT_NAME_MAX = 15

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _LABEL_NAME_FMT + ")?"

_DNS1123_LABEL_RE = re.compile("^" + _DNS1123_LABEL_FMT + "$")
_DNS1123_SUBDOMAIN_RE = re.compile("^" + _DNS1123_SUBDOMAIN_FMT + "$")
_DNS1035_LABEL_RE = re.compile("^" + _DNS1035_LABEL_FMT + "$")
_LABEL_NAME_RE = re.compile("^" + _LABEL_NAME_FMT + "$")
_LABEL_VALUE_RE = re.compile("^" + _LABEL_VALUE_FMT + "$")
_PORT_NAME_CHARSET_RE = re.compile("^[-a-z0-9]+$")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_LABEL_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)
_RELAXED_ENV_NAME_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters other "
    "than '='"
)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """`msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`, double space included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Upstream appends "'x', " per example and joins with " or ", hence the double space.
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_chars(n: int) -> str:
    """The DNS-name length message of util/validation (counts bytes, says characters)."""
    return f"must be no more than {n} characters"


def max_len_bytes(n: int) -> str:
    """The label length message of api/validate/content."""
    return f"must be no more than {n} bytes"


def inclusive_range(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _blen(value: str) -> int:
    # Go's len() counts UTF-8 bytes.
    return len(value.encode("utf-8"))


def dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_chars(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.match(value):
        if _DNS1123_SUBDOMAIN_RE.match(value):
            # A valid subdomain that is no label can only be one with dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_chars(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_chars(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def _mask_trailing_dash(name: str) -> str:
    # generateName may end in '-'; upstream swaps the last two characters for an 'a'.
    if name.endswith("-"):
        return name[:-2] + "a" if len(name) >= 2 else "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return dns1035_label(_mask_trailing_dash(name) if prefix else name)


def path_segment_name(name: str, prefix: bool) -> list[str]:
    """Names that only have to be safe as one URL path segment (Events)."""
    if not prefix:
        for illegal in (".", ".."):
            if name == illegal:
                return [f"may not be '{illegal}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def qualified_name(value: str) -> list[str]:
    """A label key: optional DNS-subdomain prefix and '/', then a name part."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in _content_dns1123_subdomain(prefix))
    else:
        return [
            "a valid label key "
            + regex_error(_LABEL_NAME_MSG, _LABEL_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _blen(name) > LABEL_NAME_MAX:
        errs.append("name part " + max_len_bytes(LABEL_NAME_MAX))
    if not _LABEL_NAME_RE.match(name):
        errs.append(
            "name part "
            + regex_error(_LABEL_NAME_MSG, _LABEL_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def _content_dns1123_subdomain(value: str) -> list[str]:
    # The content package (used for label-key prefixes) counts in bytes and says so.
    errs: list[str] = []
    if _blen(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_bytes(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def label_value(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > LABEL_VALUE_MAX:
        errs.append(max_len_bytes(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range(1, 65535)]


def port_name(port: str) -> list[str]:
    """An IANA_SVC_NAME: at most 15 of [-a-z0-9], one letter at least, no edge/double '-'."""
    errs: list[str] = []
    if len(port) > PORT_NAME_MAX:
        errs.append(max_len_chars(PORT_NAME_MAX))
    if not _PORT_NAME_CHARSET_RE.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def relaxed_env_var_name(value: str) -> list[str]:
    """Env names since RelaxedEnvironmentVariableValidation went GA: printable ASCII, no '='."""
    errs: list[str] = []
    if not value:
        errs.append("environment variable name must be non-empty")
    if any(ord(c) > 126 or ord(c) < 32 or c == "=" for c in value):
        errs.append(_RELAXED_ENV_NAME_MSG)
    return errs


def fully_qualified_domain_name(value: str) -> tuple[str, str] | None:
    """FQDN check of EndpointSlice addresses: (offending value, message) or None when valid."""
    name = value[:-1] if value.endswith(".") else value
    errs = dns1123_subdomain(name)
    if errs:
        return name, ",".join(errs)
    labels = name.split(".")
    if len(labels) < 2:
        return name, "should be a domain with at least two segments separated by dots"
    for label in labels:
        label_errs = dns1123_label(label)
        if label_errs:
            return label, ",".join(label_errs)
    return None
