"""Bootstrap tokens (`<id>.<secret>`), kept as `bootstrap-token-<id>` Secrets in kube-system, as upstream does.

A valid token authenticates as `system:bootstrap:<id>` in `system:bootstrappers` (plus the Secret's
`auth-extra-groups`). Anything else about the token — malformed, unknown id, wrong secret, other namespace or
type, expired, usage-bootstrap-authentication not "true", bad extra groups — means "not recognised", so the
request is 401. `delete_expired_bootstrap_tokens` is upstream's TokenCleaner (a controller-manager job, run by
the API server until kubelite has a controller manager).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import re
from datetime import UTC, datetime
from typing import Any

from ..api import errors
from ..api.timefmt import parse_rfc3339
from . import codec, rest
from .authn import TokenResult, UserInfo, audience_agnostic
from .context import ApiContext
from .request_info import RequestInfo

log = logging.getLogger("kubelite.apiserver")

NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
USER_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def _data(secret: dict[str, Any], key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""


def expired(secret: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether the Secret's `expiration` (RFC 3339) is past; an unparsable expiration counts as expired."""
    text = _data(secret, "expiration")
    if not text:
        return False
    when = parse_rfc3339(text)
    if when is None:
        return True
    return (now or datetime.now(UTC)) > when


def groups_of(secret: dict[str, Any]) -> list[str] | None:
    """system:bootstrappers plus the valid auth-extra-groups, sorted; None if one extra group is invalid."""
    groups = {DEFAULT_GROUP}
    for group in _data(secret, "auth-extra-groups").split(","):
        group = group.strip()
        if not group:
            continue
        if not EXTRA_GROUP_RE.match(group):
            return None
        groups.add(group)
    return sorted(groups)


class BootstrapTokenAuthenticator:
    def __init__(self, ctx: ApiContext, api_audiences: list[str] | None = None) -> None:
        self.ctx = ctx
        self.api_audiences = list(api_audiences or [])

    async def authenticate_token(self, token: str, audiences: list[str] | None = None) -> TokenResult | None:
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        token_id, token_secret = m.group(1), m.group(2)
        rt = self.ctx.registry.get("", "v1", "secrets")
        assert rt is not None
        kv = await self.ctx.store.get(rt.key(NAMESPACE, SECRET_PREFIX + token_id))
        if kv is None:
            return None
        secret = codec.decode_kv(kv)
        if secret["metadata"].get("deletionTimestamp") or secret.get("type") != SECRET_TYPE:
            return None
        if not hmac.compare_digest(_data(secret, "token-secret").encode(), token_secret.encode()):
            return None
        if _data(secret, "token-id") != token_id:
            return None
        if expired(secret):
            return None
        if _data(secret, "usage-bootstrap-authentication") != "true":
            return None
        groups = groups_of(secret)
        if groups is None:
            return None
        auds = audience_agnostic(self.api_audiences, audiences)
        if auds is None:
            return None
        return TokenResult(UserInfo(USER_PREFIX + token_id, groups), auds)


async def delete_expired_bootstrap_tokens(ctx: ApiContext, now: datetime | None = None) -> list[str]:
    """Delete the bootstrap-token Secrets in kube-system whose expiration has passed (upstream's TokenCleaner)."""
    rt = ctx.registry.get("", "v1", "secrets")
    assert rt is not None
    listed = await ctx.store.list(rt.prefix(NAMESPACE) + SECRET_PREFIX)
    deleted = []
    for kv in listed.items:
        secret = codec.decode_kv(kv)
        if secret.get("type") != SECRET_TYPE or not expired(secret, now):
            continue
        name = secret["metadata"]["name"]
        info = RequestInfo(is_resource=True, path=rt.path(NAMESPACE, name), verb="delete", version="v1",
                           namespace=NAMESPACE, resource="secrets", name=name)
        with contextlib.suppress(errors.ApiError):
            await rest.delete_object(ctx, rt, info, {}, False)
            deleted.append(name)
    return deleted


async def run_token_cleaner(ctx: ApiContext, interval: float = 5.0) -> None:
    while True:
        try:
            for name in await delete_expired_bootstrap_tokens(ctx):
                log.info("deleted expired bootstrap token secret kube-system/%s", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bootstrap token cleaner failed")
        await asyncio.sleep(interval)
