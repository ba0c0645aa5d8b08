"""Resource quantities for LimitRanger and ResourceQuota: parse, add, and print in canonical form."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...api.validation_kinds import parse_quantity

_BINARY = (("Ei", 2 ** 60), ("Pi", 2 ** 50), ("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10))
_DECIMAL = (("E", 10 ** 18), ("P", 10 ** 15), ("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3))


def value(q: Any) -> Decimal:
    v = parse_quantity(q)
    return v if v is not None else Decimal(0)


def is_binary(q: Any) -> bool:
    return isinstance(q, str) and q.rstrip("0123456789").endswith("i")


def fmt(v: Decimal, binary: bool = False) -> str:
    """Canonical text as upstream's Quantity.String(): largest exact suffix, milli for fractions."""
    if v == 0:
        return "0"
    if v != v.to_integral_value():
        milli = v * 1000
        if milli == milli.to_integral_value():
            return f"{int(milli)}m"
        return f"{int((v * 10 ** 9).to_integral_value())}n"
    n = int(v)
    for suffix, size in (_BINARY if binary else _DECIMAL):
        if n % size == 0 and abs(n) >= size:
            return f"{n // size}{suffix}"
    if binary:
        return fmt(v, False)
    return str(n)


def add(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, Decimal]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Decimal(0)) + v
    return out
