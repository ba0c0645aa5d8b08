"""OpenAPI documents: the v3 index and per group-version documents, and the v2 (swagger) document.

Schemas come from `schemas.definitions()` (JSON-schema form, `#/$defs/` refs, `type: [x, "null"]`) and
are turned back into the shape kube-apiserver serves: `#/components/schemas/` (v3) or `#/definitions/`
(v2) refs, a single `type`, `allOf: [{$ref}]` when a ref carries a description, and the Kubernetes
extensions kept as they are. Paths list every operation upstream has for each resource, so kubectl finds
the PATCH operation with `fieldValidation` (it then sends `fieldValidation=Strict`) and the kinds for
`explain`.

Documents are JSON bytes, cached per group-version and keyed on the served types, so a registry change
(a CRD) yields a new document and a new `hash`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from kubelite.api import schemas
from kubelite.api.discovery import version_info, version_priority, versions_of
from kubelite.api.resources import Registry, ResourceType, Subresource

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")
_RESPONSE_TYPES = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml")
_WATCH_TYPES = ("application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")

# Definitions whose JSON-schema form lost what upstream publishes for them.
_SCALAR_DEFS: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString holds either an int32 or a string; JSON and YAML carry whichever it holds.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point number with an optional suffix (binary Ki, Mi, Gi, Ti, Pi, Ei; "
                       "decimal m, k, M, G, T, P, E; or a decimal exponent such as 1e3), e.g. 500m, 1.5Gi, 128974848.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}
# The same two in swagger 2.0, which has no oneOf.
_SCALAR_DEFS_V2: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": _SCALAR_DEFS["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["description"],
        "format": "int-or-string", "type": "string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": _SCALAR_DEFS["io.k8s.apimachinery.pkg.api.resource.Quantity"]["description"],
        "type": "string"},
}
# Struct-valued fields that are values, not pointers, in the Go types: upstream gives them `default: {}`.
_VALUE_STRUCT_FIELDS = {"metadata", "spec", "status", "template"}
_ZERO = {"string": "", "integer": 0, "number": 0, "boolean": False}


# --- schema conversion --------------------------------------------------------------------------


def _single_type(t: Any) -> str | None:
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else None
    return t


class _Converter:
    """Rewrites one JSON-schema definition into OpenAPI form; `v3` picks components vs definitions."""

    def __init__(self, v3: bool) -> None:
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"

    def definition(self, name: str) -> dict[str, Any]:
        scalar = (_SCALAR_DEFS if self.v3 else _SCALAR_DEFS_V2).get(name)
        if scalar is not None:
            return dict(scalar)
        src = schemas.definitions()[name]
        out = self.schema(src, top_kind="x-kubernetes-group-version-kind" in src)
        if not self.v3 and out.get("type") is None and "properties" in out:
            out["type"] = "object"
        return out

    def _ref_target(self, schema: dict[str, Any]) -> str | None:
        return schemas.ref_name(schema)

    def schema(self, src: dict[str, Any], *, top_kind: bool = False, field: str = "",
               in_collection: bool = False) -> dict[str, Any]:
        target = self._ref_target(src)
        if target is not None:
            return self._ref(src, target, field=field, in_collection=in_collection)
        out: dict[str, Any] = {}
        for key, value in src.items():
            if key == "type":
                single = _single_type(value)
                if single is not None:
                    out["type"] = single
            elif key == "properties":
                out["properties"] = {
                    pname: self._property(pname, pschema, top_kind) for pname, pschema in value.items()
                }
            elif key == "items" and isinstance(value, dict):
                out["items"] = self.schema(value, in_collection=True)
            elif key == "additionalProperties" and isinstance(value, dict):
                out["additionalProperties"] = self.schema(value, in_collection=True)
            elif key in ("oneOf", "anyOf", "allOf") and isinstance(value, list):
                out[key] = [self.schema(v) for v in value]
            else:
                out[key] = value
        if in_collection and "default" not in out:
            zero = _ZERO.get(out.get("type", ""))
            if zero is not None and "enum" not in out:
                out["default"] = zero
        return out

    def _property(self, name: str, src: dict[str, Any], top_kind: bool) -> dict[str, Any]:
        if top_kind and name in ("apiVersion", "kind") and "enum" in src:
            # The JSON-schema generator pins these to the kind; upstream leaves them free strings.
            src = {k: v for k, v in src.items() if k != "enum"}
        return self.schema(src, field=name)

    def _ref(self, src: dict[str, Any], target: str, *, field: str, in_collection: bool) -> dict[str, Any]:
        ref = {"$ref": self.prefix + target}
        siblings = {k: v for k, v in src.items() if k != "$ref"}
        target_def = schemas.definitions().get(target, {})
        is_struct = "properties" in target_def
        if is_struct and (in_collection or field in _VALUE_STRUCT_FIELDS):
            siblings.setdefault("default", {})
        if not siblings:
            return ref
        if not self.v3:
            return {**ref, **siblings}
        # OpenAPI 3.0 ignores siblings of $ref, hence upstream's single-element allOf.
        return {"allOf": [ref], **siblings}


_V3 = _Converter(v3=True)
_V2 = _Converter(v3=False)


@functools.cache
def _converted(name: str, v3: bool) -> dict[str, Any]:
    return (_V3 if v3 else _V2).definition(name)


@functools.cache
def _refs_of(name: str) -> frozenset[str]:
    """Definition names referenced directly by one definition."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = schemas.ref_name(node)
            if target is not None:
                found.add(target)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schemas.definitions().get(name, {}))
    return frozenset(found)


def reachable(roots: Iterable[str]) -> list[str]:
    """Every definition reachable from the roots (roots included when they exist), sorted."""
    defs = schemas.definitions()
    seen: set[str] = set()
    stack = [r for r in roots if r in defs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n for n in _refs_of(name) if n not in seen and n in defs)
    return sorted(seen)


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, d in schemas.definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            # Prefer the canonical io.k8s.api.* name over meta types registered under many groups.
            if key not in index or name.startswith("io.k8s.api."):
                index[key] = name
    return index


def definition_for(group: str, version: str, kind: str) -> str | None:
    return _gvk_index().get((group, version, kind))


# --- operations ---------------------------------------------------------------------------------


def _param(name: str, kind: str, description: str, where: str = "query", required: bool = False,
           v3: bool = True) -> dict[str, Any]:
    p: dict[str, Any] = {"description": description, "in": where, "name": name}
    if required:
        p["required"] = True
    if v3:
        p["schema"] = {"type": kind, "uniqueItems": True}
    else:
        p["type"] = kind
        p["uniqueItems"] = True
    return p


_PARAM_SPECS: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": ("boolean", "Ask for BOOKMARK watch events; servers may send them at their discretion."),
    "continue": ("string", "Token from a previous paginated list call to fetch the next page."),
    "dryRun": ("string", "When present (All), the request is processed but nothing is persisted."),
    "fieldManager": ("string", "Name of the actor making these changes (at most 128 printable characters)."),
    "fieldSelector": ("string", "Restrict the returned objects by their fields. Defaults to everything."),
    "fieldValidation": ("string", "How to treat unknown or duplicate fields in the body: Ignore, Warn (the "
                                  "default) or Strict (reject the request)."),
    "force": ("boolean", "Force an Apply request: re-acquire fields owned by other managers. Must be unset "
                         "for other patch types."),
    "gracePeriodSeconds": ("integer", "Seconds before the object is deleted; zero deletes immediately."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "Delete an object that cannot be read from storage (unsafe; skips finalizers and preconditions)."),
    "labelSelector": ("string", "Restrict the returned objects by their labels. Defaults to everything."),
    "limit": ("integer", "Maximum number of items to return; use the continue token for more."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy. Whether dependents are orphaned."),
    "pretty": ("string", "If 'true', the output is pretty printed."),
    "propagationPolicy": ("string", "Garbage collection of dependents: Orphan, Background or Foreground."),
    "resourceVersion": ("string", "Constrains which resource versions the request may be served from."),
    "resourceVersionMatch": ("string", "How resourceVersion applies to list calls (Exact or NotOlderThan)."),
    "sendInitialEvents": ("boolean", "With watch=true, begin the stream with the current state as synthetic "
                                     "events followed by a bookmark."),
    "timeoutSeconds": ("integer", "Timeout for the list/watch call."),
    "watch": ("boolean", "Watch for changes and stream them as add, update and remove notifications."),
}
_LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
                "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
_DELETE_COLLECTION_PARAMS = ("continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
                             "ignoreStoreReadErrorWithClusterBreakingPotential", "labelSelector", "limit",
                             "orphanDependents", "propagationPolicy", "resourceVersion", "resourceVersionMatch",
                             "sendInitialEvents", "timeoutSeconds")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                  "orphanDependents", "propagationPolicy")
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _query(names: Iterable[str], v3: bool) -> list[dict[str, Any]]:
    return [_param(n, _PARAM_SPECS[n][0], _PARAM_SPECS[n][1], v3=v3) for n in names]


def _group_words(group: str) -> list[str]:
    if not group:
        return ["core"]
    return group.removesuffix(".k8s.io").split(".")


def _tag(group: str, version: str) -> str:
    words = _group_words(group)
    camel = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return f"{camel}_{version}"


def _op_prefix(group: str, version: str) -> str:
    words = _group_words(group)
    return "".join(w[:1].upper() + w[1:] for w in words) + version[:1].upper() + version[1:]


class _PathBuilder:
    """Builds the path items of one group-version, in v3 or v2 form."""

    def __init__(self, group: str, version: str, v3: bool) -> None:
        self.group, self.version, self.v3 = group, version, v3
        self.prefix = f"/apis/{group}/{version}" if group else "/api/v1"
        self.tag = _tag(group, version)
        self.op = _op_prefix(group, version)
        self.ref = "#/components/schemas/" if v3 else "#/definitions/"
        self.paths: dict[str, dict[str, Any]] = {}

    # responses and bodies
    def _content(self, schema_name: str | None, types: Iterable[str]) -> dict[str, Any]:
        schema = {"$ref": self.ref + schema_name} if schema_name else {"type": "string"}
        return {t: {"schema": schema} for t in types}

    def _responses(self, schema_name: str | None, codes: Iterable[str], watch: bool = False,
                   plain: bool = False) -> dict[str, Any]:
        text = {"200": "OK", "201": "Created", "202": "Accepted"}
        types = ("text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf") \
            if plain else _RESPONSE_TYPES + (_WATCH_TYPES if watch else ())
        out: dict[str, Any] = {}
        for code in codes:
            if self.v3:
                out[code] = {"content": self._content(schema_name, types), "description": text[code]}
            else:
                schema = {"$ref": self.ref + schema_name} if schema_name else {"type": "string"}
                out[code] = {"description": text[code], "schema": schema}
        out["401"] = {"description": "Unauthorized"}
        return out

    def _operation(self, method: str, action: str, op_id: str, description: str, gvk: dict[str, str],
                   params: list[dict[str, Any]], responses: dict[str, Any],
                   body: tuple[str, Iterable[str], bool] | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"description": description, "operationId": op_id}
        if params:
            op["parameters"] = params
        if body is not None:
            schema_name, types, required = body
            if self.v3:
                rb: dict[str, Any] = {"content": self._content(schema_name, types)}
                if required:
                    rb["required"] = True
                op["requestBody"] = rb
            else:
                op.setdefault("parameters", []).insert(
                    0, {"in": "body", "name": "body", "required": required,
                        "schema": {"$ref": self.ref + schema_name}})
                op["consumes"] = list(types) if "*/*" not in types else ["*/*"]
        if not self.v3:
            op["produces"] = list(_RESPONSE_TYPES)
            op["schemes"] = ["https"]
        op["responses"] = responses
        op["tags"] = [self.tag]
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk
        return op

    def _path_params(self, *names: str) -> list[dict[str, Any]]:
        descriptions = {
            "name": "name of the {kind}",
            "namespace": "object name and auth scope, such as for teams and projects",
        }
        out = []
        for n in names:
            if n == "pretty":
                out.append(_param("pretty", "string", _PARAM_SPECS["pretty"][1], v3=self.v3))
            else:
                out.append(_param(n, "string", descriptions.get(n, n), where="path", required=True, v3=self.v3))
        return out

    def _item(self, path: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return self.paths.setdefault(path, {"parameters": params})

    # the path items of one resource
    def add_resource(self, rt: ResourceType, smp: bool) -> None:
        kind = rt.kind
        gvk = {"group": rt.group, "kind": kind, "version": rt.version}
        schema = rt.schema_name or definition_for(rt.group, rt.version, kind) or kind
        list_schema = definition_for(rt.group, rt.version, rt.list_kind) or schema + "List"
        ns = "Namespaced" if rt.namespaced else ""
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        coll = f"{self.prefix}{scope}/{rt.resource}"
        item = coll + "/{name}"
        verbs = set(rt.verbs)
        patch_types = PATCH_TYPES if smp else tuple(t for t in PATCH_TYPES if "strategic" not in t)
        name_param = self._path_params("name")
        name_param[0]["description"] = f"name of the {kind}"
        ns_params = self._path_params("namespace") if rt.namespaced else []
        pretty = self._path_params("pretty")

        if verbs & {"list", "create", "deletecollection"}:
            p = self._item(coll, ns_params + pretty)
            if "deletecollection" in verbs:
                body = (META + "DeleteOptions", ("*/*",), False)
                p["delete"] = self._operation(
                    "delete", "deletecollection", f"delete{self.op}Collection{ns}{kind}",
                    f"delete collection of {kind}", gvk, _query(_DELETE_COLLECTION_PARAMS, self.v3),
                    self._responses(META + "Status", ("200",)), body)
            if "list" in verbs:
                p["get"] = self._operation(
                    "get", "list", f"list{self.op}{ns}{kind}", f"list or watch objects of kind {kind}", gvk,
                    _query(_LIST_PARAMS, self.v3), self._responses(list_schema, ("200",), watch=True))
            if "create" in verbs:
                p["post"] = self._operation(
                    "post", "post", f"create{self.op}{ns}{kind}", f"create a {kind}", gvk,
                    _query(_WRITE_PARAMS, self.v3), self._responses(schema, ("200", "201", "202")),
                    (schema, ("*/*",), True))
        if verbs & {"get", "update", "patch", "delete"}:
            p = self._item(item, name_param + ns_params + pretty)
            if "delete" in verbs:
                p["delete"] = self._operation(
                    "delete", "delete", f"delete{self.op}{ns}{kind}", f"delete a {kind}", gvk,
                    _query(_DELETE_PARAMS, self.v3), self._responses(META + "Status", ("200", "202")),
                    (META + "DeleteOptions", ("*/*",), False))
            if "get" in verbs:
                p["get"] = self._operation(
                    "get", "get", f"read{self.op}{ns}{kind}", f"read the specified {kind}", gvk, [],
                    self._responses(schema, ("200",)))
            if "patch" in verbs:
                p["patch"] = self._operation(
                    "patch", "patch", f"patch{self.op}{ns}{kind}", f"partially update the specified {kind}", gvk,
                    _query(_PATCH_PARAMS, self.v3), self._responses(schema, ("200", "201")),
                    (META + "Patch", patch_types, True))
            if "update" in verbs:
                p["put"] = self._operation(
                    "put", "put", f"replace{self.op}{ns}{kind}", f"replace the specified {kind}", gvk,
                    _query(_WRITE_PARAMS, self.v3), self._responses(schema, ("200", "201")),
                    (schema, ("*/*",), True))
        if "list" in verbs and rt.namespaced:
            all_ns = f"{self.prefix}/{rt.resource}"
            self._item(all_ns, _query(_LIST_PARAMS, self.v3) + pretty)["get"] = self._operation(
                "get", "list", f"list{self.op}{kind}ForAllNamespaces", f"list or watch objects of kind {kind}",
                gvk, [], self._responses(list_schema, ("200",), watch=True))
        if "watch" in verbs:
            self._watch_paths(rt, gvk, name_param, ns_params, pretty)
        for sub in rt.subresources:
            self._subresource(rt, sub, item, name_param + ns_params + pretty, patch_types)

    def _watch_paths(self, rt: ResourceType, gvk: dict[str, str], name_param: list, ns_params: list,
                     pretty: list) -> None:
        kind = rt.kind
        ns = "Namespaced" if rt.namespaced else ""
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        watch_event = META + "WatchEvent"
        query = _query(_LIST_PARAMS, self.v3)
        note = "deprecated: use the 'watch' parameter with a list operation instead"
        coll = f"{self.prefix}/watch{scope}/{rt.resource}"
        self._item(coll, query + ns_params + pretty)["get"] = self._operation(
            "get", "watchlist", f"watch{self.op}{ns}{kind}List",
            f"watch individual changes to a list of {kind}. {note}.", gvk, [],
            self._responses(watch_event, ("200",), watch=True))
        self._item(coll + "/{name}", query + name_param + ns_params + pretty)["get"] = self._operation(
            "get", "watch", f"watch{self.op}{ns}{kind}",
            f"watch changes to an object of kind {kind}. {note}, filtered to a single item with the "
            "'fieldSelector' parameter.", gvk, [], self._responses(watch_event, ("200",), watch=True))
        if rt.namespaced:
            self._item(f"{self.prefix}/watch/{rt.resource}", query + pretty)["get"] = self._operation(
                "get", "watchlist", f"watch{self.op}{kind}ListForAllNamespaces",
                f"watch individual changes to a list of {kind}. {note}.", gvk, [],
                self._responses(watch_event, ("200",), watch=True))

    def _subresource(self, rt: ResourceType, sub: Subresource, item: str, params: list[dict[str, Any]],
                     patch_types: tuple[str, ...]) -> None:
        group = sub.group or rt.group
        version = sub.version or rt.version
        kind = sub.kind or rt.kind
        gvk = {"group": group, "kind": kind, "version": version}
        schema = definition_for(group, version, kind)
        ns = "Namespaced" if rt.namespaced else ""
        suffix = sub.name[:1].upper() + sub.name[1:]
        op_kind = f"{ns}{rt.kind}{suffix}"
        p = self._item(f"{item}/{sub.name}", params)
        connect = kind.endswith("Options")
        if connect:
            methods = {"get": "get", "create": "post", "update": "put", "patch": "patch", "delete": "delete"}
            for verb in sub.verbs:
                method = methods.get(verb)
                if method:
                    p[method] = self._operation(
                        method, "connect", f"connect{self.op}{method.capitalize()}{op_kind}",
                        f"connect {method.upper()} requests to {sub.name} of {rt.kind}", gvk, [],
                        self._responses(None, ("200",)))
            return
        if sub.name == "log":
            p["get"] = self._operation(
                "get", "get", f"read{self.op}{op_kind}", f"read log of the specified {rt.kind}", gvk,
                [],
                self._responses(None, ("200",), plain=True))
            return
        what = f"{sub.name} of the specified {rt.kind}"
        if "get" in sub.verbs and schema:
            p["get"] = self._operation("get", "get", f"read{self.op}{op_kind}", f"read {what}", gvk, [],
                                       self._responses(schema, ("200",)))
        if "create" in sub.verbs and schema:
            p["post"] = self._operation(
                "post", "post", f"create{self.op}{op_kind}", f"create {what}", gvk, _query(_WRITE_PARAMS, self.v3),
                self._responses(schema, ("200", "201", "202")), (schema, ("*/*",), True))
        if "patch" in sub.verbs and schema:
            p["patch"] = self._operation(
                "patch", "patch", f"patch{self.op}{op_kind}", f"partially update {what}", gvk,
                _query(_PATCH_PARAMS, self.v3), self._responses(schema, ("200", "201")),
                (META + "Patch", patch_types, True))
        if "update" in sub.verbs and schema:
            p["put"] = self._operation(
                "put", "put", f"replace{self.op}{op_kind}", f"replace {what}", gvk, _query(_WRITE_PARAMS, self.v3),
                self._responses(schema, ("200", "201")), (schema, ("*/*",), True))
        if len(p) == 1:  # only the shared parameters: nothing we can describe
            del self.paths[f"{item}/{sub.name}"]

    def add_resource_list(self) -> None:
        self.paths[self.prefix + "/"] = {"get": self._operation(
            "get", "get", f"get{self.op}APIResources", "get available resources", {}, [],
            self._responses(META + "APIResourceList", ("200",)))}
        op = self.paths[self.prefix + "/"]["get"]
        del op["x-kubernetes-action"], op["x-kubernetes-group-version-kind"]


# --- documents ----------------------------------------------------------------------------------

_COMMON = (META + "APIResourceList", META + "DeleteOptions", META + "Status", META + "Patch", META + "WatchEvent")


def _schema_roots(types: Iterable[ResourceType]) -> set[str]:
    roots = set(_COMMON)
    for rt in types:
        if rt.schema_name:
            roots.add(rt.schema_name)
        for name in (definition_for(rt.group, rt.version, rt.kind),
                     definition_for(rt.group, rt.version, rt.list_kind)):
            if name:
                roots.add(name)
        for sub in rt.subresources:
            name = definition_for(sub.group or rt.group, sub.version or rt.version, sub.kind or rt.kind)
            if name:
                roots.add(name)
    return roots


def _custom_schema(rt: ResourceType, v3: bool) -> dict[str, Any] | None:
    """A type not in the built-in definitions (a CRD) may bring its schema in `extra["openapi_schema"]`."""
    custom = rt.extra.get("openapi_schema") if rt.extra else None
    if not isinstance(custom, dict):
        return None
    out = dict(custom)
    props = dict(out.get("properties") or {})
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    meta_ref = {"$ref": prefix + META + "ObjectMeta"}
    props["metadata"] = {"allOf": [meta_ref], "default": {}} if v3 else {**meta_ref, "default": {}}
    out["properties"] = props
    out.setdefault("type", "object")
    out["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
    return out


def _components(types: list[ResourceType], v3: bool) -> dict[str, Any]:
    defs = schemas.definitions()
    out = {name: _converted(name, v3) for name in reachable(_schema_roots(types))}
    for rt in types:
        if rt.schema_name and rt.schema_name not in defs:
            custom = _custom_schema(rt, v3)
            if custom is not None:
                out[rt.schema_name] = custom
                out.update({n: _converted(n, v3) for n in reachable([META + "ObjectMeta"]) if n not in out})
    return out


def _fingerprint(types: Iterable[ResourceType]) -> tuple:
    return tuple((rt, orjson.dumps(rt.extra.get("openapi_schema"), option=orjson.OPT_SORT_KEYS))
                 if rt.extra and "openapi_schema" in rt.extra else (rt, b"") for rt in types)


def _dump(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _info() -> dict[str, str]:
    return {"title": "Kubernetes", "version": version_info()["gitVersion"]}


def _sorted_gv_types(registry: Registry, group: str, version: str) -> list[ResourceType]:
    return sorted(registry.in_group_version(group, version), key=lambda rt: rt.resource)


def _has_smp(rt: ResourceType) -> bool:
    # Strategic merge needs the patch metadata of the built-in schemas; custom types only merge.
    return bool(rt.schema_name) and rt.schema_name in schemas.definitions()


@functools.lru_cache(maxsize=256)
def _gv_document(group: str, version: str, fingerprint: tuple) -> bytes:
    types = [entry[0] for entry in fingerprint]
    builder = _PathBuilder(group, version, v3=True)
    builder.add_resource_list()
    for rt in types:
        builder.add_resource(rt, smp=_has_smp(rt))
    doc = {
        "components": {"schemas": _components(types, v3=True),
                       "securitySchemes": {"BearerToken": {"description": "Bearer Token authentication",
                                                           "in": "header", "name": "authorization",
                                                           "type": "apiKey"}}},
        "info": _info(),
        "openapi": "3.0.0",
        "paths": builder.paths,
        "security": [{"BearerToken": []}],
    }
    return _dump(doc)


def openapi_v3_document(registry: Registry, group: str, version: str) -> bytes | None:
    """`/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`: the document as JSON bytes."""
    types = _sorted_gv_types(registry, group, version)
    if not types:
        return None
    return _gv_document(group, version, _fingerprint(types))


def _simple_document(path: str, op_id: str, description: str, schema_name: str, tag: str) -> bytes:
    builder = _PathBuilder("", "v1", v3=True)
    op = builder._operation("get", "get", op_id, description, {}, [],
                            builder._responses(schema_name, ("200",)))
    del op["x-kubernetes-action"], op["x-kubernetes-group-version-kind"]
    op["tags"] = [tag]
    doc = {
        "components": {"schemas": {n: _converted(n, True) for n in reachable([schema_name])}},
        "info": _info(),
        "openapi": "3.0.0",
        "paths": {path: {"get": op}},
    }
    return _dump(doc)


@functools.cache
def _root_document(kind: str) -> bytes:
    if kind == "api":
        return _simple_document("/api/", "getCoreAPIVersions", "get available API versions",
                                META + "APIVersions", "core")
    if kind == "apis":
        return _simple_document("/apis/", "getAPIVersions", "get available API versions",
                                META + "APIGroupList", "apis")
    return _simple_document("/version/", "getCodeVersion", "get the version information for this server",
                            "io.k8s.apimachinery.pkg.version.Info", "version")


@functools.cache
def _group_document(group: str) -> bytes:
    words = _group_words(group)
    op = "".join(w[:1].upper() + w[1:] for w in words)
    tag = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return _simple_document(f"/apis/{group}/", f"get{op}APIGroup", "get information of a group",
                            META + "APIGroup", tag)


def openapi_v3_path(registry: Registry, path: str) -> bytes | None:
    """Any document the index lists, by its key: `api/v1`, `apis/apps/v1`, `apis/apps`, `api`, `apis`, `version`."""
    path = path.strip("/")
    if path in ("api", "apis", "version"):
        return _root_document(path)
    parts = path.split("/")
    if parts == ["api", "v1"]:
        return openapi_v3_document(registry, "", "v1")
    if len(parts) == 3 and parts[0] == "apis":
        return openapi_v3_document(registry, parts[1], parts[2])
    if len(parts) == 2 and parts[0] == "apis" and versions_of(registry, parts[1]):
        return _group_document(parts[1])
    return None


@functools.lru_cache(maxsize=256)
def document_hash(doc: bytes) -> str:
    """The `hash` kube-apiserver puts in serverRelativeURL: sha512 of the document, upper-case hex."""
    return hashlib.sha512(doc).hexdigest().upper()


def openapi_v3_index(registry: Registry) -> dict[str, Any]:
    """`/openapi/v3`: every document with a content-hashed URL, so clients refetch exactly what changed."""
    keys = ["api", "apis", "version"]
    if registry.in_group_version("", "v1"):
        keys.append("api/v1")
    for group, _ in registry.groups():
        keys.append(f"apis/{group}")
        keys.extend(f"apis/{group}/{v}" for v in sorted(versions_of(registry, group), key=version_priority))
    paths = {}
    for key in sorted(keys):
        doc = openapi_v3_path(registry, key)
        if doc is not None:
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(doc)}"}
    return {"paths": paths}


# --- v2 -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _v2_document(fingerprint: tuple) -> bytes:
    types = [entry[0] for entry in fingerprint]
    paths: dict[str, Any] = {}
    by_gv: dict[tuple[str, str], list[ResourceType]] = {}
    for rt in types:
        by_gv.setdefault((rt.group, rt.version), []).append(rt)
    for (group, version), gv_types in by_gv.items():
        builder = _PathBuilder(group, version, v3=False)
        builder.add_resource_list()
        for rt in gv_types:
            builder.add_resource(rt, smp=_has_smp(rt))
        paths.update(builder.paths)
    doc = {
        "definitions": _components(types, v3=False),
        "info": _info(),
        "paths": paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "in": "header",
                                                "name": "authorization", "type": "apiKey"}},
        "swagger": "2.0",
    }
    return _dump(doc)


def openapi_v2(registry: Registry) -> bytes:
    """`/openapi/v2` as JSON (swagger 2.0) for every served type."""
    types = sorted(registry, key=lambda rt: (rt.group, rt.version, rt.resource))
    return _v2_document(_fingerprint(types))
