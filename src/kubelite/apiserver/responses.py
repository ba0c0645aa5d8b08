"""Building aiohttp responses: JSON bodies, Status errors, content negotiation for Tables and YAML."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from ..api import errors

JSON_TYPE = "application/json"
TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
_COMMON = {"Cache-Control": "no-cache, private"}


class _Response(web.Response):
    """Forgets its body once sent: aiohttp keeps a keep-alive connection's last response while the
    connection idles, and a list of 30,000 pods is over 100 MB."""

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._body = None
        self._compressed_body = None


def json_response(body: Any, status: int = 200, *, content_type: str = JSON_TYPE,
                  warnings: list[str] | None = None, newline: bool = True) -> web.Response:
    """`newline`: end the body with one, as Go's json.Encoder (the API machinery's serializer) does; the
    endpoints that write json.Marshal's bytes themselves (/version, /openapi) end without."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    if newline and not data.endswith(b"\n"):
        data += b"\n"
    headers = dict(_COMMON)
    headers["Content-Type"] = content_type
    resp = _Response(body=data, status=status, headers=headers)
    if warnings:
        for w in warnings:
            resp.headers.add("Warning", warning_header(w))
    return resp


def raw_json_response(body: Any) -> web.Response:
    """A non-API document as upstream's WriteRawJSON writes it: indented two spaces, no final newline."""
    return json_response(orjson.dumps(body, option=orjson.OPT_INDENT_2), newline=False)


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def error_response(err: errors.ApiError) -> web.Response:
    resp = json_response(err.status(), err.code)
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def wants_table(accept: str) -> bool:
    """kubectl asks `application/json;as=Table;v=v1;g=meta.k8s.io,...`; v1beta1 Tables are served as v1."""
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def wants_yaml(accept: str) -> bool:
    first = accept.split(",", 1)[0].split(";", 1)[0].strip()
    return first in ("application/yaml", "application/x-yaml")


def check_acceptable(accept: str) -> None:
    """406 when the client accepts nothing we can produce (we answer JSON, YAML, or Tables)."""
    if not accept:
        return
    for part in accept.split(","):
        mtype = part.split(";", 1)[0].strip().lower()
        if mtype in ("application/json", "*/*", "application/*", "application/yaml", "application/x-yaml", ""):
            return
    raise errors.not_acceptable(accept)


def object_response(request: web.Request, obj: Any, status: int = 200,
                    warnings: list[str] | None = None) -> web.Response:
    accept = request.headers.get("Accept", "")
    if accept and wants_yaml(accept):
        if isinstance(obj, bytes):
            obj = orjson.loads(obj)
        text = yaml.safe_dump(obj, default_flow_style=False, sort_keys=False)
        return _Response(text=text, status=status, content_type="application/yaml", headers=_COMMON)
    return json_response(obj, status, warnings=warnings)


def status_success(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body
