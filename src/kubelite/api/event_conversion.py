"""core/v1 Event <-> events.k8s.io/v1 Event, as upstream converts them through the internal type.

Both APIs serve the same objects: one storage (`/registry/events/<ns>/<name>`) holding the core/v1 form.
The events.k8s.io resource converts on the way in (`to_core`) and on the way out (`from_core`).

Field correspondence (events.k8s.io/v1 = core/v1): note = message, regarding = involvedObject,
reportingController = reportingComponent, deprecatedSource = source, deprecatedFirstTimestamp =
firstTimestamp, deprecatedLastTimestamp = lastTimestamp, deprecatedCount = count; eventTime, series,
action, related, reason, type and reportingInstance keep their names.

The output carries what Go's encoder always prints for each version: in core/v1, `involvedObject`,
`source` (as `{}`), `firstTimestamp`/`lastTimestamp`/`eventTime` (null when unset) and
`reportingComponent`/`reportingInstance` (`""` when unset); in events.k8s.io/v1, `eventTime`,
`regarding`, `deprecatedSource`, `deprecatedFirstTimestamp` and `deprecatedLastTimestamp`.
"""

from __future__ import annotations

from typing import Any

CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"

Obj = dict[str, Any]

# (events.k8s.io/v1 name, core/v1 name) for fields that change name between the versions
_RENAMED = (
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_SAME = ("eventTime", "series", "reportingInstance", "action", "reason", "related", "type")

# field-selector labels of events.k8s.io/v1 and the core/v1 labels they stand for (upstream's mapping)
FIELD_LABELS: dict[str, str] = {
    "reason": "reason",
    "reportingController": "reportingComponent",
    "source": "source",
    "type": "type",
    "metadata.namespace": "metadata.namespace",
    "metadata.name": "metadata.name",
    **{f"regarding.{f}": f"involvedObject.{f}"
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value == {} or value is False


def _convert(obj: Obj, api_version: str, renames: list[tuple[str, str]]) -> Obj:
    """A new dict: apiVersion, kind and metadata first, then the renamed and the shared fields."""
    out: Obj = {"apiVersion": api_version, "kind": "Event", "metadata": obj.get("metadata") or {}}
    source_names = {src for src, _ in renames} | set(_SAME) | {"apiVersion", "kind", "metadata"}
    for src, dst in renames:
        if src in obj:
            out[dst] = obj[src]
    for name in _SAME:
        if name in obj:
            out[name] = obj[name]
    # fields neither version knows ride along, so strict field validation still sees them
    for key, value in obj.items():
        if key not in source_names and key not in out:
            out[key] = value
    return out


def to_core(obj: Obj) -> Obj:
    """An events.k8s.io/v1 Event as the core/v1 Event that is stored."""
    out = _convert(obj, CORE_API_VERSION, list(_RENAMED))
    out.setdefault("involvedObject", {})
    if not isinstance(out.get("source"), dict):
        out["source"] = {}
    for name in ("firstTimestamp", "lastTimestamp", "eventTime"):
        out.setdefault(name, None)
    for name in ("reportingComponent", "reportingInstance"):
        if out.get(name) is None:
            out[name] = ""
    if _empty(out.get("count")):
        out.pop("count", None)
    for name in ("message", "reason", "type", "action"):
        if out.get(name) in (None, ""):
            out.pop(name, None)
    for name in ("series", "related"):
        if out.get(name) is None:
            out.pop(name, None)
    return out


def from_core(obj: Obj) -> Obj:
    """A stored core/v1 Event as events.k8s.io/v1 serves it."""
    out = _convert(obj, EVENTS_API_VERSION, [(core, events) for events, core in _RENAMED])
    out.setdefault("regarding", {})
    if not isinstance(out.get("deprecatedSource"), dict):
        out["deprecatedSource"] = {}
    for name in ("eventTime", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
        out.setdefault(name, None)
    if _empty(out.get("deprecatedCount")):
        out.pop("deprecatedCount", None)
    for name in ("note", "reason", "type", "action", "reportingController", "reportingInstance"):
        if out.get(name) in (None, ""):
            out.pop(name, None)
    for name in ("series", "related"):
        if out.get(name) is None:
            out.pop(name, None)
    return out


def core_field_label(label: str) -> str | None:
    """The core/v1 field label an events.k8s.io/v1 label selects on, or None when it is not supported."""
    return FIELD_LABELS.get(label)


# what resources.py puts in the events.k8s.io ResourceType's `extra`
def _stored(obj: Obj) -> Obj:
    from . import zerovalues  # imported when first used: the node agent loads this module, not the schemas

    return zerovalues.fill("io.k8s.api.core.v1.Event", to_core(obj))


def _served(obj: Obj) -> Obj:
    from . import zerovalues

    return zerovalues.fill("io.k8s.api.events.v1.Event", from_core(obj))


CONVERSION: dict[str, Any] = {"convert_in": _stored, "convert_out": _served}
