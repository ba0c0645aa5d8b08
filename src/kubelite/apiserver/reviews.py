"""authentication.k8s.io/v1 TokenReview and SelfSubjectReview: create-only, nothing stored.

TokenReview asks the token authenticators (not anonymous) about `spec.token` for `spec.audiences` (default: the
API audiences). SelfSubjectReview (`kubectl auth whoami`) answers who the request is, after impersonation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import errors
from ..api.resources import ResourceType
from .authn import Authentication, UserInfo
from .context import ApiContext
from .request_info import RequestInfo
from .responses import object_response
from .review_bodies import read_review, review_metadata

GROUP = "authentication.k8s.io"
API_VERSION = "authentication.k8s.io/v1"


async def _body(request: web.Request, kind: str) -> dict[str, Any]:
    return await read_review(request, API_VERSION, kind, empty_ok=True)


_metadata = review_metadata


class Reviews:
    def __init__(self, authentication: Authentication) -> None:
        self.authentication = authentication

    def handlers(self) -> dict[tuple[str, str], Any]:
        """Create handlers by (group, resource), for the Dispatcher's `create_handlers`."""
        return {(GROUP, "tokenreviews"): self.token_review, (GROUP, "selfsubjectreviews"): self.self_subject_review}

    async def token_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                           rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "TokenReview")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.bad_request(f"token is required for TokenReview in {GROUP}")
        audiences = [a for a in (spec.get("audiences") or []) if isinstance(a, str)]
        result = await self.authentication.authenticate_token(token, audiences or None)
        status: dict[str, Any] = {"user": {}}
        if result is not None and result.user is not None:
            status = {"authenticated": True, "user": result.user.to_json(), "audiences": result.audiences}
        elif result is not None and result.error:
            status["error"] = result.error
        out = {"kind": "TokenReview", "apiVersion": API_VERSION, "metadata": _metadata(body),
               "spec": spec, "status": status}
        return object_response(request, out, 201)

    async def self_subject_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                                  rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "SelfSubjectReview")
        user: UserInfo = request["user"]
        out = {"kind": "SelfSubjectReview", "apiVersion": API_VERSION, "metadata": _metadata(body),
               "status": {"userInfo": user.to_json()}}
        return object_response(request, out, 201)
