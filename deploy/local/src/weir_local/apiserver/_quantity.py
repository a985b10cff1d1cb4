"""resource.Quantity: parsing, comparison and the canonical string the API server returns.

A real API server stores `cpu: 0.5` as "500m" and `memory: 1024Mi` as "1Gi"; validation messages
quote the canonical form too ("must be less than or equal to cpu limit of 500m"). Values are exact
fractions so that "0.1" and "100m" compare equal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction


class QuantityFormat(Enum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL.items()}
_BINARY_BY_EXP = {v: k for k, v in _BINARY.items()}

_QUANTITY_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)

QUANTITY_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: QuantityFormat

    def __str__(self) -> str:
        return canonical(self)


def parse(text: object) -> Quantity | None:
    """The quantity, or None when resource.ParseQuantity would fail (or it is no scalar)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, float):
        if not math.isfinite(text):
            return None
        text = repr(text)
    if not isinstance(text, str):
        return None
    m = _QUANTITY_RE.match(text)
    if not m or not (m.group("int") or m.group("frac")):
        return None
    digits = (m.group("int") or "0") + "." + (m.group("frac") or "0")
    value = Fraction(digits)
    suffix = m.group("suffix") or ""
    if suffix in _BINARY:
        fmt = QuantityFormat.BINARY_SI
        value *= 2 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        fmt = QuantityFormat.DECIMAL_SI
        value *= Fraction(10) ** _DECIMAL[suffix]
    else:  # e<exponent> / E<exponent>
        fmt = QuantityFormat.DECIMAL_EXPONENT
        value *= Fraction(10) ** int(suffix[1:])
    if m.group("sign") == "-":
        value = -value
    return Quantity(value, fmt)


def round_up_milli(q: Quantity) -> Quantity:
    """SetDefaults_ResourceList rounds every value up to milli precision."""
    scaled = q.value * 1000
    if scaled.denominator == 1:
        return q
    # Away from zero, as inf.Dec RoundUp does.
    rounded = math.ceil(scaled) if scaled > 0 else math.floor(scaled)
    return Quantity(Fraction(rounded, 1000), q.format)


def canonical(q: Quantity) -> str:
    """Quantity.String(): the shortest exact form in the value's own family of suffixes."""
    v = q.value
    if v == 0:
        return "0"
    fmt = q.format
    if fmt is QuantityFormat.BINARY_SI and (-1024 < v < 1024 or v.denominator != 1):
        # Small or fractional binary values are shown in decimal to avoid rounding.
        fmt = QuantityFormat.DECIMAL_SI
    if fmt is QuantityFormat.BINARY_SI:
        mantissa, exp = int(v), 0
        while mantissa % 1024 == 0:
            mantissa //= 1024
            exp += 10
        suffix = _BINARY_BY_EXP.get(exp)
        if suffix is not None:
            return f"{mantissa}{suffix}"
        return f"{mantissa * 2 ** (exp - 60)}Ei"
    mantissa, exp = _decimal_parts(v)
    # Exponents are shown in multiples of three.
    exp3 = (exp // 3) * 3
    mantissa *= 10 ** (exp - exp3)
    if fmt is QuantityFormat.DECIMAL_SI and exp3 in _DECIMAL_BY_EXP:
        return f"{mantissa}{_DECIMAL_BY_EXP[exp3]}"
    return f"{mantissa}e{exp3}" if exp3 else str(mantissa)


def _decimal_parts(v: Fraction) -> tuple[int, int]:
    """v == mantissa * 10**exp with no trailing zeros in mantissa (v is a finite decimal)."""
    exp = 0
    while v.denominator != 1:
        v *= 10
        exp -= 1
    mantissa = int(v)
    while mantissa % 10 == 0:
        mantissa //= 10
        exp += 1
    return mantissa, exp


def canonical_text(raw: object) -> object:
    """The canonical string for a quantity-like JSON value; anything unparsable is kept."""
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return raw
    q = parse(raw)
    return raw if q is None else canonical(q)
