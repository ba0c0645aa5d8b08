"""The patch bodies of PATCH requests: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch.

JSON and merge patch follow what the API server does with gopkg.in/evanphx/json-patch.v4 (its quirks
included: negative array indices, `replace` of a missing object key adds it, a `copy` from a missing key
copies null), and answer errors the way upstream's PATCH handler does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from kubelite.api.errors import ApiError, bad_request, too_large
from kubelite.api.patch_strategic import strategic_merge_patch

from .gojson import json_kind as _json_kind
from .jsoncopy import deep_copy

__all__ = ["JsonPatchFailure", "json_patch", "merge_patch", "strategic_merge_patch"]

MAX_JSON_PATCH_OPERATIONS = 10000
# kube-apiserver arms jsonpatch.AccumulatedCopySizeLimit from JSONPatchMaxCopyBytes (3 MiB by default).
MAX_COPY_BYTES = 3 * 1024 * 1024

_ATOI = re.compile(r"[+-]?[0-9]+\Z")
_GO_INT_MAX = 2**63 - 1


class JsonPatchFailure(Exception):
    """Why a JSON patch did not apply; upstream does not send it, it is chained as the ApiError's cause."""


def _unprocessable() -> ApiError:
    # NewGenericServerResponse(422, ...) keeps its stock message and drops json-patch's reason.
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request")


def _not_an_object(result: Any) -> ApiError:
    """A patch that leaves something other than an object cannot be decoded back into one (upstream: 422)."""
    text = orjson.dumps(result).decode()
    detail = ("couldn't get version/kind; json parse error: json: cannot unmarshal "
              f"{_json_kind(result)} into Go value of type struct {{ APIVersion string "
              '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    body = f"Invalid value: {orjson.dumps(text).decode()}: {detail}"
    return ApiError(422, "Invalid", f' "" is invalid: patch: {body}',
                    {"causes": [{"reason": "FieldValueInvalid", "message": body, "field": "patch"}]})


# ---------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch


def json_patch(doc: dict, ops: list) -> dict:
    """Apply a JSON patch to `doc` (left untouched) and return the patched copy."""
    if ops is None:  # a `null` body decodes to an empty patch
        return deep_copy(doc)
    if not isinstance(ops, list):
        raise bad_request(f"json: cannot unmarshal {_json_kind(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise bad_request(
                f"json: cannot unmarshal {_json_kind(op)} into Go value of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise too_large("Request entity too large: The allowed maximum operations in a JSON patch is "
                        f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    state = _Doc(deep_copy(doc))
    for op in ops:
        try:
            state.apply(op or {})
        except JsonPatchFailure as failure:
            raise _unprocessable() from failure
    if not isinstance(state.root, dict):
        raise _not_an_object(state.root)
    return state.root


def _decode_token(token: str) -> str:
    # RFC 6901: ~1 before ~0, in a single left-to-right pass.
    return re.sub(r"~[01]", lambda m: "/" if m.group() == "~1" else "~", token)


def _atoi(key: str) -> int:
    if not _ATOI.match(key) or abs(int(key)) > _GO_INT_MAX:
        raise JsonPatchFailure(f'strconv.Atoi: parsing "{key}": invalid syntax')
    return int(key)


def _list_index(seq: list, key: str, *, allow_end: bool = False) -> int:
    """An index of `seq` as json-patch v4 resolves it (negative counts from the end)."""
    idx = _atoi(key)
    size = len(seq) + (1 if allow_end else 0)
    if idx >= size or idx < -size:
        raise JsonPatchFailure(f"Unable to access invalid index: {idx}: invalid index referenced")
    return idx + size if idx < 0 else idx


def _field(op: dict, name: str) -> str:
    value = op.get(name)
    if value is None:
        raise JsonPatchFailure(f"operation missing {name} field: missing value")
    if not isinstance(value, str):
        raise JsonPatchFailure(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
    return value


def _json_equal(a: Any, b: Any) -> bool:
    """Structural equality where 1, 1.0 and true are three different values, as in raw JSON."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_json_equal, a, b))
    return type(a) is type(b) and a == b


class _Doc:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.copied = 0

    def _container(self, path: str) -> tuple[dict | list, str]:
        """The object or array holding the last token of `path`, and that token (decoded)."""
        tokens = path.split("/")
        if len(tokens) < 2:
            raise JsonPatchFailure(f'doc is missing path: "{path}": missing value')
        node: Any = self.root
        # v4 ignores whatever precedes the first "/", as upstream does.
        for token in tokens[1:-1]:
            try:
                node = self._get(node, _decode_token(token))
            except JsonPatchFailure:
                node = None
            if not isinstance(node, dict | list):
                raise JsonPatchFailure(f'doc is missing path: "{path}": missing value')
        return node, _decode_token(tokens[-1])

    @staticmethod
    def _get(node: dict | list, key: str) -> Any:
        if isinstance(node, dict):
            return node.get(key)
        return node[_list_index(node, key)]

    @staticmethod
    def _add(node: dict | list, key: str, value: Any) -> None:
        if isinstance(node, dict):
            node[key] = value
        elif key == "-":
            node.append(value)
        else:
            node.insert(_list_index(node, key, allow_end=True), value)

    @staticmethod
    def _remove(node: dict | list, key: str) -> None:
        if isinstance(node, dict):
            if key not in node:
                raise JsonPatchFailure(f"Unable to remove nonexistent key: {key}: missing value")
            del node[key]
        else:
            del node[_list_index(node, key)]

    def apply(self, op: dict) -> None:
        kind = op.get("op")
        handler = {"add": self._op_add, "remove": self._op_remove, "replace": self._op_replace,
                   "move": self._op_move, "copy": self._op_copy, "test": self._op_test}.get(
                       kind if isinstance(kind, str) else "")
        if handler is None:
            raise JsonPatchFailure(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        handler(op)

    def _op_add(self, op: dict) -> None:
        node, key = self._container(_field(op, "path"))
        self._add(node, key, op.get("value"))

    def _op_remove(self, op: dict) -> None:
        node, key = self._container(_field(op, "path"))
        self._remove(node, key)

    def _op_replace(self, op: dict) -> None:
        path = _field(op, "path")
        if path == "":
            # v4 swaps the whole document for an object or array and silently ignores anything else.
            if isinstance(op.get("value"), dict | list):
                self.root = op["value"]
            return
        node, key = self._container(path)
        if isinstance(node, dict):
            node[key] = op.get("value")  # v4 does not require the key to exist
        else:
            node[_list_index(node, key)] = op.get("value")

    def _op_move(self, op: dict) -> None:
        node, key = self._container(_field(op, "from"))
        value = self._get(node, key)
        self._remove(node, key)
        node, key = self._container(_field(op, "path"))
        self._add(node, key, value)

    def _op_copy(self, op: dict) -> None:
        node, key = self._container(_field(op, "from"))
        value = self._get(node, key)
        target, target_key = self._container(_field(op, "path"))
        if value is not None:
            self.copied += len(orjson.dumps(value))
            if self.copied > MAX_COPY_BYTES:
                raise JsonPatchFailure(
                    f"Unable to complete the copy, the accumulated size increase of copy is {self.copied}, "
                    f"exceeding the limit {MAX_COPY_BYTES}")
        self._add(target, target_key, deep_copy(value))

    def _op_test(self, op: dict) -> None:
        path = _field(op, "path")
        if path == "":
            current = self.root
        else:
            node, key = self._container(path)
            current = self._get(node, key)
        expected = op.get("value")
        if current is None and expected is None:
            return
        if current is None or expected is None or not _json_equal(current, expected):
            raise JsonPatchFailure(f"testing value {path} failed: test failed")


# ---------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(doc: dict, patch: dict, *, owned: bool = False) -> dict:
    """Apply a JSON merge patch to `doc` and return the patched copy; `doc` is left untouched unless
    `owned` (the caller gives up `doc` and `patch`, which spares copying them)."""
    if isinstance(patch, list):
        # evanphx returns the (null-pruned) array itself, which then fails to decode as an object.
        raise _not_an_object(_pruned(deep_copy(patch)))
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    result = doc if owned else deep_copy(doc)
    _merge_docs(result, patch if owned else deep_copy(patch))
    return result


def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _pruned(value)
        elif isinstance(doc[key], dict) and isinstance(value, dict):
            _merge_docs(doc[key], value)
        elif isinstance(doc[key], dict):
            doc[key] = value  # v4 takes a non-object over an object without pruning it
        else:
            doc[key] = _pruned(value)


def _pruned(value: Any) -> Any:
    """Drop null members of objects, at any depth; v4 keeps null array elements."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
