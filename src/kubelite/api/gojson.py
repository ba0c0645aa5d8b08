"""How Go's encoding/json names decoded JSON values, for error messages that match upstream's."""

from __future__ import annotations

from typing import Any


def json_kind(value: Any) -> str:
    """The type word of encoding/json's UnmarshalTypeError ("cannot unmarshal <kind> into …")."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"
