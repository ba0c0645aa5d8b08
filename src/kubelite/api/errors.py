"""Kubernetes `Status` errors, shaped as upstream's apimachinery `StatusError`s."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API answers with a `metav1.Status` body and the matching HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(name: str | None, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def qualified(resource: str, group: str) -> str:
    """`pods`, `deployments.apps`: how upstream names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource),
    )


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def stale(resource: str, group: str, name: str) -> ApiError:
    return conflict(resource, group, name, OPTIMISTIC_LOCK)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid; each cause is {"type","field","message"} with type a FieldValue* reason."""
    parts = []
    for c in causes:
        # upstream prints "<field>: <message>" for every cause, an empty field included
        parts.append(f"{c['field']}: {c['message']}" if "field" in c else c["message"])
    if len(parts) == 1:
        text = parts[0]
    else:
        text = "[" + ", ".join(parts) + "]"
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": c.get("type", "FieldValueInvalid"), "message": c["message"], "field": c.get("field", "")}
        for c in causes
    ]
    return ApiError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}', details)


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    target = qualified(resource, group)
    subject = f'{target} "{name}"' if name else target
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(name, group, resource))


def method_not_allowed(verb: str, kind: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f'{verb} is not supported on resources of kind "{kind}"',
                    {})


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got "{content_type}"')


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """504 with a retry hint: the client asked for a revision this server has not reached yet."""
    return ApiError(504, "Timeout", f"Too large resource version: {requested}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})
