"""Server-side printing: `meta.k8s.io/v1` Tables for human `kubectl get`, lists and watch events.

Columns and cells come from `printers` for built-in kinds, from a CRD's `additionalPrinterColumns` (kept in
`ResourceType.extra`) for custom resources, and otherwise NAME/AGE as the CRD handler serves by default.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from kubelite.api.errors import bad_request
from kubelite.api.printers import DEFAULT, GENERIC, PRINTERS, Column, Printer, doc, name
from kubelite.api.resources import BUILTIN, ResourceType
from kubelite.api.selectors import go_quote
from kubelite.api.timefmt import UNKNOWN, human_duration, parse_rfc3339
from kubelite.api.timefmt import now as utcnow

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
TABLE_V1BETA1_CONTENT_TYPE = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT = "None", "Metadata", "Object"

_BUILTIN_KINDS = {(rt.group, rt.kind) for rt in BUILTIN}


def table_accepted(accept: str | None) -> str | None:
    """The Table version ("v1" or "v1beta1") the Accept header asks for first, or None for a plain response."""
    for part in (accept or "").split(","):
        params = {}
        for p in part.split(";")[1:]:
            k, _, v = p.strip().partition("=")
            params[k.strip()] = v.strip()
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
        media = part.split(";")[0].strip()
        if media in ("application/json", "*/*", "application/*"):
            return None
    return None


def check_include_object(value: str | None) -> str:
    """The `includeObject` query parameter, defaulted; anything else is a 400 as upstream answers it."""
    if value in (None, ""):
        return INCLUDE_METADATA
    if value not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise bad_request(f"unrecognized includeObject value: {go_quote(value)}")
    return value


# ---------------------------------------------------------------------------------------------------
# custom resource printer columns (a JSONPath subset: fields, indexes, [*] and [?(@.k=="v")] filters)

_SEGMENT = re.compile(r"""\.([^.\[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+|\*)\s*\]|\[\?\((.*?)\)\]""")
_FILTER = re.compile(r"""^@((?:\.[^.=!<>\s]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|(\S+))$""")


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """All values a simple JSONPath selects; an empty list when it selects nothing."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1].strip()
    if expr.startswith("$"):
        expr = expr[1:]
    current = [obj]
    pos = 0
    while pos < len(expr):
        m = _SEGMENT.match(expr, pos)
        if m is None:
            return []
        pos = m.end()
        field = m.group(1) or m.group(2) or m.group(3)
        nxt: list[Any] = []
        for cur in current:
            if field is not None:
                if isinstance(cur, dict) and field in cur:
                    nxt.append(cur[field])
            elif m.group(4) is not None:
                if not isinstance(cur, list):
                    continue
                if m.group(4) == "*":
                    nxt.extend(cur)
                else:
                    i = int(m.group(4))
                    if -len(cur) <= i < len(cur):
                        nxt.append(cur[i])
            else:
                items = cur if isinstance(cur, list) else []
                nxt.extend(x for x in items if _filter_matches(x, m.group(5)))
        current = nxt
    return [v for v in current if v is not None]


def _filter_matches(item: Any, cond: str) -> bool:
    m = _FILTER.match(cond.strip())
    if m is None:
        return False
    path, op, *alts = m.groups()
    want = next((a for a in alts if a is not None), "")
    have = jsonpath(item, path)
    got = _print_value(have[0]) if have else None
    return (got == want) if op == "==" else (got != want)


def _print_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _crd_cell(col: dict[str, Any], obj: dict[str, Any], now: datetime) -> Any:
    results = jsonpath(obj, col.get("jsonPath", ""))
    if not results:
        return None
    value = results[0]
    ctype = col.get("type", "string")
    if ctype == "string":
        return _print_value(value)
    if ctype == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if ctype == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if ctype == "boolean" and isinstance(value, bool):
        return value
    if ctype == "date" and isinstance(value, str):
        ts = parse_rfc3339(value)
        if ts is None:
            return "<invalid>"
        return human_duration((now - ts).total_seconds())
    return None


def _crd_printer(columns: list[dict[str, Any]]) -> Printer:
    cols = [Column("Name", "string", lambda: doc("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "name"), 0,
                   "name")]
    cols += [Column(c.get("name", ""), c.get("type", "string"), c.get("description", ""),
                    int(c.get("priority", 0) or 0), c.get("format", "")) for c in columns]

    def row(obj: dict[str, Any], now: datetime) -> list[Any]:
        return [name(obj), *(_crd_cell(c, obj, now) for c in columns)]

    return Printer(cols, row)


def printer_for(rt: ResourceType) -> Printer:
    """The printer for a resource type: upstream's for built-ins, a CRD's printer columns, or NAME/AGE."""
    found = PRINTERS.get((rt.group, rt.kind))
    if found is not None:
        return found
    columns = rt.extra.get("additionalPrinterColumns") or rt.extra.get("printer_columns")
    if columns:
        return _crd_printer(list(columns))
    if (rt.group, rt.kind) in _BUILTIN_KINDS:
        return DEFAULT
    return GENERIC


# ---------------------------------------------------------------------------------------------------
# Tables

def _row_object(rt: ResourceType, obj: dict[str, Any], include_object: str) -> Any:
    if include_object == INCLUDE_NONE:
        return None
    if include_object == INCLUDE_OBJECT:
        if obj.get("kind") and obj.get("apiVersion"):
            return obj
        return {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def table_rows(rt: ResourceType, objects: list[dict[str, Any]], *, include_object: str = INCLUDE_METADATA,
               now: datetime | None = None, printer: Printer | None = None) -> list[dict[str, Any]]:
    at = now or utcnow()
    p = printer or printer_for(rt)
    rows = []
    for obj in objects:
        out = p.row(obj, at)
        cells, conditions = out if isinstance(out, tuple) else (out, [])
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(rt, obj, include_object)
        rows.append(row)
    return rows


def to_table(rt: ResourceType, objects: list[dict[str, Any]], *, include_object: str | None = INCLUDE_METADATA,
             resource_version: str = "", continue_token: str = "", remaining: int | None = None,
             now: datetime | None = None, no_headers: bool = False) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table of `objects` (a list, or one object for a GET) of resource type `rt`."""
    include = check_include_object(include_object)
    printer = printer_for(rt)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [] if no_headers else printer.column_definitions(),
        "rows": table_rows(rt, objects, include_object=include, now=now, printer=printer),
    }


def to_table_event(rt: ResourceType, obj: dict[str, Any], *, include_object: str | None = INCLUDE_METADATA,
                   now: datetime | None = None, no_headers: bool = False) -> dict[str, Any]:
    """The Table a watch event carries for one object (ADDED, MODIFIED or DELETED) under a Table Accept."""
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    return to_table(rt, [obj], include_object=include_object, resource_version=rv, now=now, no_headers=no_headers)


def age_cell(timestamp: str | None, now: datetime | None = None) -> str:
    ts = parse_rfc3339(timestamp)
    if ts is None:
        return UNKNOWN
    return human_duration(((now or utcnow()) - ts).total_seconds())


__all__ = [
    "INCLUDE_METADATA", "INCLUDE_NONE", "INCLUDE_OBJECT", "TABLE_CONTENT_TYPE", "TABLE_V1BETA1_CONTENT_TYPE",
    "check_include_object", "jsonpath", "printer_for", "table_accepted", "table_rows", "to_table",
    "to_table_event",
]
