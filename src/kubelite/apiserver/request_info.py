"""Turn a request path into (verb, namespace, resource, name, subresource), as upstream's RequestInfo does."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

# Subresources of a namespace object: /api/v1/namespaces/<ns>/status is the namespace's status,
# not a resource called "status" inside it.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(slots=True)
class RequestInfo:
    is_resource: bool
    path: str
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection (or the lower-cased method)
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    parts: tuple[str, ...] = ()


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes", "y")


def parse(method: str, raw_path: str, query: dict[str, str] | None = None) -> RequestInfo:
    query = query or {}
    path = raw_path.split("?", 1)[0]
    segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    verb = _VERBS.get(method, method.lower())
    info = RequestInfo(is_resource=False, path=path, verb=verb)
    if not segments or segments[0] not in ("api", "apis"):
        return info
    info.api_prefix = segments[0]
    rest = segments[1:]
    if info.api_prefix == "api":
        if not rest:
            return info
        info.version, rest = rest[0], rest[1:]
    else:
        if len(rest) < 2:
            if rest:
                info.group = rest[0]
            return info
        info.group, info.version, rest = rest[0], rest[1], rest[2:]
    if not rest:
        return info
    info.is_resource = True
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
        # else: the namespace object itself (or its status/finalize): resource stays "namespaces"
    info.parts = tuple(rest)
    info.resource = rest[0]
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
    if info.resource == "namespaces" and len(rest) > 1 and rest[0] == "namespaces":
        # /api/v1/namespaces/<name>[/status]: the name is the namespace, which is not a container for itself
        info.name = info.namespace or rest[1]
        info.namespace = ""
    if verb == "get":
        if _truthy(query.get("watch")):
            info.verb = "watch"
        elif not info.name:
            info.verb = "list"
    elif verb == "delete" and not info.name:
        info.verb = "deletecollection"
    return info
