"""Authorization. Until RBAC lands: authenticated users may do anything; anonymous users only read the
public-info endpoints (what upstream's system:public-info-viewer role grants)."""

from __future__ import annotations

from ..api import errors
from .authn import UserInfo
from .request_info import RequestInfo

PUBLIC_INFO_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})


class AuthenticatedAllowAuthorizer:
    def authorize(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        if not user.anonymous:
            return True, ""
        if not info.is_resource and (info.path in PUBLIC_INFO_PATHS or info.path.startswith(("/healthz/", "/livez/", "/readyz/"))):
            return True, ""
        return False, ""


def forbidden_for(user: UserInfo, info: RequestInfo) -> errors.ApiError:
    """The 403 text upstream's RBAC authorizer gives, word for word."""
    if not info.is_resource:
        return errors.ApiError(403, "Forbidden",
                               f'forbidden: User "{user.name}" cannot {info.verb} path "{info.path}"', {})
    resource = info.resource + (f"/{info.subresource}" if info.subresource else "")
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    target = errors.qualified(info.resource, info.group)
    subject = f'{target} "{info.name}"' if info.name else target
    return errors.ApiError(
        403, "Forbidden",
        f'{subject} is forbidden: User "{user.name}" cannot {info.verb} resource "{resource}" '
        f'in API group "{info.group}" {scope}',
        {"name": info.name, "group": info.group, "kind": info.resource} if info.name else
        {"group": info.group, "kind": info.resource})
