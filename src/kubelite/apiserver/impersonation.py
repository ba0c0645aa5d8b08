"""Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): after authentication, the request may act as another
user if the authenticated user may `impersonate` each thing asked for, as upstream's impersonation filter does.

Checked attributes: users/<name> or serviceaccounts/<name> in the SA's namespace, groups/<name>,
uids/<uid> and userextras/<key> (name = value) in authentication.k8s.io. The first refusal is a 403 with
upstream's words, e.g. `users "admin" is forbidden: User "x" cannot impersonate resource "users" in API group
"" at the cluster scope`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from ..api import errors
from .authn import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from .authz import forbidden_for
from .request_info import RequestInfo
from .serviceaccount_tokens import group_names, make_username, split_username

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHN_GROUP = "authentication.k8s.io"


@dataclass(slots=True)
class _Ask:
    kind: str  # ServiceAccount, User, Group, UserExtra, UID
    name: str
    namespace: str = ""
    api_version: str = ""
    field_path: str = ""  # the extra key of a UserExtra

    def go_repr(self) -> str:
        """How Go's %v prints the ObjectReference upstream builds (upstream's error text shows it)."""
        return "{" + " ".join([self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path]) + "}"


def _asks(request: web.Request) -> list[_Ask]:
    headers = request.headers
    asks: list[_Ask] = []
    user = headers.get(USER_HEADER, "")
    if user:
        sa = split_username(user)
        asks.append(_Ask("ServiceAccount", sa[1], sa[0]) if sa else _Ask("User", user))
    groups = headers.getall(GROUP_HEADER, [])
    for group in groups:
        asks.append(_Ask("Group", group))
    extras = False
    for name in headers:
        if name.lower().startswith(EXTRA_PREFIX):
            extras = True
            key = name[len(EXTRA_PREFIX):].lower()
            key = unquote(key)
            for value in headers.getall(name):
                if not any(a.kind == "UserExtra" and a.field_path == key and a.name == value for a in asks):
                    asks.append(_Ask("UserExtra", value, api_version="authentication.k8s.io/v1", field_path=key))
    uid = headers.get(UID_HEADER, "")
    if uid:
        asks.append(_Ask("UID", uid, api_version="authentication.k8s.io/v1"))
    if (groups or extras or uid) and not user:
        listed = "[" + " ".join(a.go_repr() for a in asks) + "]"
        raise errors.ApiError(500, "InternalError",
                              f'Internal Server Error: "{request.path_qs}": requested {listed} without '
                              f"impersonating a user", {})
    return asks


def wants_impersonation(request: web.Request) -> bool:
    headers = request.headers
    if USER_HEADER in headers or GROUP_HEADER in headers or UID_HEADER in headers:
        return True
    return any(name.lower().startswith(EXTRA_PREFIX) for name in headers)


async def _decide(authorizer, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
    decision = authorizer.authorize(user, info)
    if inspect.isawaitable(decision):
        decision = await decision
    if isinstance(decision, tuple):
        return bool(decision[0]), str(decision[1] or "")
    return bool(decision), ""


async def impersonate(request: web.Request, user: UserInfo, authorizer) -> UserInfo:
    """The user the request acts as: `user` itself, or whom it asks to impersonate if `user` may."""
    if not wants_impersonation(request):
        return user
    asks = _asks(request)
    if not asks:
        return user
    groups_given = bool(request.headers.getall(GROUP_HEADER, []))
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for ask in asks:
        info = RequestInfo(is_resource=True, path=request.path, verb="impersonate", name=ask.name)
        if ask.kind == "ServiceAccount":
            info.resource, info.namespace, info.version = "serviceaccounts", ask.namespace, "v1"
            username = make_username(ask.namespace, ask.name)
            if not groups_given:
                groups = group_names(ask.namespace)
        elif ask.kind == "User":
            info.resource, info.version = "users", "v1"
            username = ask.name
        elif ask.kind == "Group":
            info.resource, info.version = "groups", "v1"
            groups.append(ask.name)
        elif ask.kind == "UserExtra":
            info.resource, info.group, info.version, info.subresource = "userextras", AUTHN_GROUP, "v1", ask.field_path
            extra.setdefault(ask.field_path, []).append(ask.name)
        else:
            info.resource, info.group, info.version = "uids", AUTHN_GROUP, "v1"
            uid = ask.name
        allowed, reason = await _decide(authorizer, user, info)
        if not allowed:
            raise forbidden_for(user, info, reason)
    if username != ANONYMOUS:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return UserInfo(username, groups, uid, extra)
