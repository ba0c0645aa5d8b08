"""Ingress routing rules: which backend serves a (host, path), by the networking.k8s.io/v1 Ingress rules.

- Hosts: an exact host wins over a wildcard (`*.foo.com` matches exactly one more label: `bar.foo.com`, not
  `foo.com` nor `a.bar.foo.com`), which wins over rules without a host; a request is matched against the
  paths of the one host it selects.
- Paths: `Exact` matches the path as is (case-sensitive); `Prefix` matches element-wise on `/`-separated
  elements (`/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`; a trailing `/` in the rule is
  ignored); `ImplementationSpecific` is treated as `Prefix`.  The longest matching path wins; on a tie Exact
  beats Prefix; then the older Ingress wins.
- Nothing matches: the `defaultBackend` of the oldest Ingress that has one, else no route (404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    port: int | str  # number or name of the Service port
    ingress: str = ""  # "ns/name" of the Ingress that routed here


@dataclass(frozen=True)
class _Path:
    path: str
    exact: bool
    elements: tuple[str, ...]
    backend: Backend
    order: tuple  # (creationTimestamp, ns/name, index): older first


@dataclass
class _Host:
    paths: list[_Path] = field(default_factory=list)


def path_elements(path: str) -> tuple[str, ...]:
    return tuple(e for e in path.split("/") if e)


def prefix_matches(rule: tuple[str, ...], request: tuple[str, ...]) -> bool:
    return request[: len(rule)] == rule


def backend_of(namespace: str, spec: Obj | None, ingress: str) -> Backend | None:
    svc = (spec or {}).get("service")
    if not svc or not svc.get("name"):
        return None  # resource backends are not served
    port = svc.get("port") or {}
    number = port.get("number")
    return Backend(namespace, svc["name"], int(number) if number else (port.get("name") or 80), ingress)


def normalize_host(host: str) -> str:
    """The Host header without port, lower case, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1: host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class RouteTable:
    def __init__(self) -> None:
        self.exact: dict[str, _Host] = {}
        self.wildcard: dict[str, _Host] = {}  # suffix after "*." → rules
        self.any_host = _Host()
        self.default: Backend | None = None
        self._default_order: tuple | None = None

    @classmethod
    def build(cls, ingresses: list[Obj]) -> RouteTable:
        table = cls()
        for ing in ingresses:
            table.add(ing)
        table.finish()
        return table

    def add(self, ing: Obj) -> None:
        md = ing.get("metadata") or {}
        ns = md.get("namespace") or "default"
        key = f"{ns}/{md.get('name', '')}"
        spec = ing.get("spec") or {}
        created = md.get("creationTimestamp") or ""
        default = backend_of(ns, spec.get("defaultBackend"), key)
        if default is not None and (self._default_order is None or (created, key) < self._default_order):
            self.default, self._default_order = default, (created, key)
        for i, rule in enumerate(spec.get("rules") or []):
            host = (rule.get("host") or "").lower()
            if not host:
                bucket = self.any_host
            elif host.startswith("*."):
                bucket = self.wildcard.setdefault(host[2:], _Host())
            else:
                bucket = self.exact.setdefault(host, _Host())
            for j, p in enumerate((rule.get("http") or {}).get("paths") or []):
                backend = backend_of(ns, p.get("backend"), key)
                if backend is None:
                    continue
                path = p.get("path") or "/"
                exact = p.get("pathType") == "Exact"
                bucket.paths.append(_Path(path, exact, path_elements(path), backend, (created, key, i, j)))

    def finish(self) -> None:
        for bucket in [*self.exact.values(), *self.wildcard.values(), self.any_host]:
            # longest first; Exact before Prefix of the same length; older Ingress first
            bucket.paths.sort(key=lambda p: (-len(p.path.rstrip("/") or "/"), not p.exact, p.order))

    def _match_paths(self, bucket: _Host, path: str) -> Backend | None:
        elements = path_elements(path)
        best: _Path | None = None
        best_len = -1
        for p in bucket.paths:
            if p.exact:
                if p.path != path:
                    continue
                length = len(p.path)
            else:
                if not prefix_matches(p.elements, elements):
                    continue
                length = len(p.path.rstrip("/") or "/")
            if length > best_len or (length == best_len and best is not None and p.exact and not best.exact):
                best, best_len = p, length
        return best.backend if best else None

    def match(self, host: str, path: str) -> Backend | None:
        """The backend for a request; a host with rules of its own never falls through to the rules of
        another host (as a virtual server of its own): an unmatched path there goes to the default backend."""
        host = normalize_host(host)
        bucket = self.exact.get(host)
        if bucket is None and "." in host:
            bucket = self.wildcard.get(host.split(".", 1)[1])
        if bucket is None:
            bucket = self.any_host
        return self._match_paths(bucket, path or "/") or self.default

    def hosts(self) -> list[str]:
        return sorted(self.exact) + [f"*.{w}" for w in sorted(self.wildcard)]
