"""Reading and decoding request bodies: size limit, media types, JSON/YAML/protobuf, nesting bombs."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from ..api import errors

MAX_BODY_BYTES = 3 * 1024 * 1024  # upstream's MaxRequestBodyBytes
MAX_YAML_NODES = 1_000_000  # after alias expansion
MAX_DEPTH = 1000

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()


async def read_raw(request: web.Request) -> bytes:
    """The body, refusing to buffer more than the limit (the check happens while reading)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.too_large(f"Request entity too large: limit is {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise errors.too_large(f"Request entity too large: limit is {MAX_BODY_BYTES}")
        chunks.append(chunk)
    return b"".join(chunks)


def loads_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise errors.bad_request(f"error decoding JSON: {e}") from None
    except RecursionError:
        raise errors.bad_request(f"error decoding JSON: exceeded max depth of {MAX_DEPTH}") from None


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have with every alias expanded (aliases share nodes in the graph)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        if done:
            sizes[id(node)] = min(1 + sum(sizes.get(id(c), 1) for c in children), MAX_YAML_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def loads_yaml(data: bytes) -> Any:
    """YAML with bounded alias expansion and depth, so alias bombs and deep nesting fail fast and cleanly."""
    try:
        depth = 0
        for event in yaml.parse(data, Loader=_YamlLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise errors.bad_request(f"yaml: exceeded max depth of {MAX_DEPTH}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(data, Loader=_YamlLoader)
        if root is None:
            return None
        if _expanded_size(root) > MAX_YAML_NODES:
            raise errors.bad_request("yaml: document contains excessive aliasing")
        doc = yaml.load(data, Loader=_YamlLoader)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise errors.bad_request(f"error converting YAML to JSON: {first}") from None
    except RecursionError:
        raise errors.bad_request(f"yaml: exceeded max depth of {MAX_DEPTH}") from None
    # YAML timestamps and dates are not JSON: pass them through the JSON encoder's view of them
    try:
        return orjson.loads(orjson.dumps(doc, default=str))
    except (TypeError, orjson.JSONEncodeError) as e:
        raise errors.bad_request(f"error converting YAML to JSON: {e}") from None


def decode(data: bytes, mtype: str) -> Any:
    """Decode a create/update body by media type into a JSON-shaped value."""
    if mtype in ("", JSON):
        return loads_json(data)
    if mtype in (YAML, "application/x-yaml", "text/yaml"):
        return loads_yaml(data)
    if mtype == PROTOBUF:
        from ..api import protobuf

        return protobuf.decode(data)
    raise errors.unsupported_media_type(mtype)


def decode_object(data: bytes, mtype: str) -> dict[str, Any]:
    if not data.strip():
        raise errors.bad_request("the body of the request was empty")
    obj = decode(data, mtype)
    if not isinstance(obj, dict):
        raise errors.bad_request(
            f"Object 'Kind' is missing in '{data[:100].decode('utf-8', 'replace')}'")
    return obj
