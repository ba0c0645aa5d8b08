"""Kubernetes resource quantities ("100m", "64Mi", "1e3") as Decimals.

A module of its own so that the node agent and the scheduler can parse quantities without loading the
validation modules (validation_kinds re-exports `parse_quantity`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QTY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal("1e3"),
    "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QTY.match(value.strip())
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix in _SUFFIX:
        return number * _SUFFIX[suffix]
    if suffix[:1] in "eE":
        try:
            return number * (Decimal(10) ** int(suffix[1:]))
        except ValueError:
            return None
    return None
