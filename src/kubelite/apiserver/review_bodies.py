"""Bodies of the create-only review kinds (TokenReview, SelfSubjectReview, the access reviews)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import errors
from . import body as bodies


async def read_review(request: web.Request, api_version: str, kind: str, *, empty_ok: bool) -> dict[str, Any]:
    raw = await bodies.read_raw(request)
    if not raw.strip():
        if empty_ok:
            return {}
        raise errors.bad_request("the body of the request was empty")
    body = bodies.decode_object(raw, bodies.media_type(request))
    if body.get("kind") not in (None, "", kind) or body.get("apiVersion") not in (None, "", api_version):
        raise errors.bad_request(f"the body of the request was in an unknown format: expected {api_version}, "
                                 f"Kind={kind}, got {body.get('apiVersion')}, Kind={body.get('kind')}")
    return body


def review_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """The request's metadata as the response carries it (reviews are never stored)."""
    meta = dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}
    meta["creationTimestamp"] = None
    return meta
