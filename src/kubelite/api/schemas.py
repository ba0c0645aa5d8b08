"""Kubernetes OpenAPI definitions for the served version, from the `kubernetes-validate` package."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import orjson

DEFAULT_VERSION = "1.33"
_REF_PREFIX = "#/$defs/"


@functools.cache
def _package_dir() -> str:
    # located, not imported: importing kubernetes_validate pulls in jsonschema, ~0.1 s of start-up
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package is not installed")
    return list(spec.submodule_search_locations)[0]


def _schema_dir(version: str) -> str:
    root = os.path.join(_package_dir(), "kubernetes-json-schema")
    return os.path.join(root, f"v{version}.0-local")


@functools.cache
def available(version: str) -> bool:
    return os.path.isfile(os.path.join(_schema_dir(version), "_definitions.json"))


@functools.cache
def definitions(version: str = DEFAULT_VERSION) -> dict[str, dict[str, Any]]:
    """All definitions by OpenAPI name (io.k8s.api.core.v1.Pod, …), loaded once on first use."""
    with open(os.path.join(_schema_dir(version), "_definitions.json"), "rb") as f:
        return orjson.loads(f.read())["$defs"]


def ref_name(schema: dict[str, Any]) -> str | None:
    """The definition name a `$ref` schema points to, or None."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX):]
    return None


def resolve(schema: dict[str, Any], version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """Follow `$ref` (possibly nested in allOf) to the definition it names."""
    seen = 0
    while True:
        name = ref_name(schema)
        if name is None and len(schema.get("allOf", ())) == 1:
            name = ref_name(schema["allOf"][0])
        if name is None or seen > 32:
            return schema
        schema = definitions(version)[name]
        seen += 1


def definition(name: str, version: str = DEFAULT_VERSION) -> dict[str, Any] | None:
    return definitions(version).get(name)


def types_of(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema allows ('null' included where the schema says so)."""
    t = schema.get("type")
    if t is None:
        return set()
    if isinstance(t, str):
        return {t}
    return set(t)
