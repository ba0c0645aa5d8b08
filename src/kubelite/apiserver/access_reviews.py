"""authorization.k8s.io/v1 reviews: SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview and
SelfSubjectRulesReview. Create-only, nothing stored; each asks the same authorizer chain the real request would
meet, so `kubectl auth can-i` answers what the API would do. kubectl sends these as protobuf bodies."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import errors
from ..api.resources import ResourceType
from .authn import UserInfo
from .authz import Authorization
from .context import ApiContext
from .rbac import Attrs
from .request_info import RequestInfo
from .responses import object_response
from .review_bodies import read_review, review_metadata

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"


async def _body(request: web.Request, kind: str) -> dict[str, Any]:
    return await read_review(request, API_VERSION, kind, empty_ok=False)


_metadata = review_metadata


def _spec(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _check_attributes(kind: str, spec: dict[str, Any]) -> None:
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is not None and non is not None:
        raise errors.invalid(kind, GROUP, "", [{
            "type": "FieldValueInvalid", "field": "spec.nonResourceAttributes",
            "message": "Invalid value: \"object\": cannot be specified in combination with resourceAttributes"}])
    if res is None and non is None:
        raise errors.invalid(kind, GROUP, "", [{
            "type": "FieldValueInvalid", "field": "spec.resourceAttributes",
            "message": "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes "
                       "must be specified"}])


def attrs_of(spec: dict[str, Any]) -> Attrs:
    res = spec.get("resourceAttributes")
    if res is not None:
        return Attrs(str(res.get("verb") or ""), True, str(res.get("group") or ""), str(res.get("version") or ""),
                     str(res.get("namespace") or ""), str(res.get("resource") or ""),
                     str(res.get("subresource") or ""), str(res.get("name") or ""))
    non = spec.get("nonResourceAttributes") or {}
    return Attrs(str(non.get("verb") or ""), False, path=str(non.get("path") or ""))


def _status(decision: str, reason: str) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision == "allow"}
    if decision == "deny":
        status["denied"] = True
    if reason:
        status["reason"] = reason
    return status


class AccessReviews:
    def __init__(self, authorization: Authorization) -> None:
        self.authorization = authorization

    def handlers(self) -> dict[tuple[str, str], Any]:
        return {(GROUP, "subjectaccessreviews"): self.subject_access_review,
                (GROUP, "localsubjectaccessreviews"): self.local_subject_access_review,
                (GROUP, "selfsubjectaccessreviews"): self.self_subject_access_review,
                (GROUP, "selfsubjectrulesreviews"): self.self_subject_rules_review}

    async def _review(self, request: web.Request, kind: str, user: UserInfo, body: dict[str, Any],
                      status: int = 201) -> web.StreamResponse:
        spec = _spec(body)
        decision, reason = await self.authorization.decide(user, attrs_of(spec))
        out = {"kind": kind, "apiVersion": API_VERSION, "metadata": _metadata(body), "spec": spec,
               "status": _status(decision, reason)}
        return object_response(request, out, status)

    @staticmethod
    def _subject(spec: dict[str, Any]) -> UserInfo:
        return UserInfo(str(spec.get("user") or ""), [str(g) for g in spec.get("groups") or []],
                        str(spec.get("uid") or ""), dict(spec.get("extra") or {}))

    async def subject_access_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                                    rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "SubjectAccessReview")
        spec = _spec(body)
        _check_attributes("SubjectAccessReview", spec)
        if not spec.get("user") and not spec.get("groups"):
            raise errors.invalid("SubjectAccessReview", GROUP, "", [{
                "type": "FieldValueInvalid", "field": "spec.user",
                "message": 'Invalid value: "": at least one of user or group must be specified'}])
        return await self._review(request, "SubjectAccessReview", self._subject(spec), body)

    async def local_subject_access_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                                          rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "LocalSubjectAccessReview")
        spec = _spec(body)
        _check_attributes("LocalSubjectAccessReview", spec)
        if not spec.get("user") and not spec.get("groups"):
            raise errors.invalid("LocalSubjectAccessReview", GROUP, "", [{
                "type": "FieldValueInvalid", "field": "spec.user",
                "message": 'Invalid value: "": at least one of user or group must be specified'}])
        res = spec.get("resourceAttributes")
        if res is not None and (res.get("namespace") or "") != info.namespace:
            raise errors.invalid("LocalSubjectAccessReview", GROUP, "", [{
                "type": "FieldValueInvalid", "field": "spec.resourceAttributes.namespace",
                "message": f'Invalid value: "{res.get("namespace") or ""}": must match metadata.namespace'}])
        if spec.get("nonResourceAttributes") is not None:
            raise errors.invalid("LocalSubjectAccessReview", GROUP, "", [{
                "type": "FieldValueInvalid", "field": "spec.nonResourceAttributes",
                "message": 'Invalid value: "object": disallowed on this kind of request'}])
        meta = body.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["namespace"] = info.namespace
        return await self._review(request, "LocalSubjectAccessReview", self._subject(spec), body)

    async def self_subject_access_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                                         rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "SelfSubjectAccessReview")
        _check_attributes("SelfSubjectAccessReview", _spec(body))
        return await self._review(request, "SelfSubjectAccessReview", request["user"], body)

    async def self_subject_rules_review(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                                        rt: ResourceType) -> web.StreamResponse:
        body = await _body(request, "SelfSubjectRulesReview")
        spec = _spec(body)
        namespace = str(spec.get("namespace") or "")
        if not namespace:
            raise errors.bad_request("no namespace on request")
        resource_rules, url_rules, incomplete, problems = self.authorization.rules_for(request["user"], namespace)
        status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                                  "incomplete": incomplete}
        if problems:
            status["evaluationError"] = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        out = {"kind": "SelfSubjectRulesReview", "apiVersion": API_VERSION, "metadata": _metadata(body),
               "spec": spec, "status": status}
        return object_response(request, out, 201)


def install(app: web.Application, authorization: Authorization) -> None:
    creates = dict(app.get("create_handlers", {}))
    creates.update(AccessReviews(authorization).handlers())
    app["create_handlers"] = creates
