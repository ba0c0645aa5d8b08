"""Deep copies of JSON-shaped values (what every object in kubelite is), several times faster than
copy.deepcopy for them."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


def deep_copy(value: T) -> T:
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):  # a non-JSON value (e.g. a huge int): the general way
        return copy.deepcopy(value)


__all__ = ["deep_copy", "Any"]
