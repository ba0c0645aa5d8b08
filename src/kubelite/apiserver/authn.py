"""Authentication: a chain of authenticators; the first that recognises the request wins, else 401."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from ..api import errors
from ..pki.tls import peer_identity
from ..pki.tokenfile import TokenFile

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"


@dataclass(slots=True)
class UserInfo:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


def _with_authenticated(groups: list[str]) -> list[str]:
    return groups if AUTHENTICATED in groups else [*groups, AUTHENTICATED]


class X509Authenticator:
    """The client certificate's CN is the user and its O entries the groups (the handshake verified it)."""

    def authenticate(self, request: web.Request) -> UserInfo | None:
        transport = request.transport
        if transport is None:
            return None
        identity = peer_identity(transport.get_extra_info("peercert"))
        if identity is None:
            return None
        name, groups = identity
        return UserInfo(name, _with_authenticated(list(groups)))


class TokenFileAuthenticator:
    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request)
        if token is None:
            return None
        found = self.tokens.lookup(token)
        if found is None:
            return None
        user, uid, groups = found
        return UserInfo(user, _with_authenticated(groups), uid)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authentication:
    def __init__(self, authenticators: list, anonymous: bool = True) -> None:
        self.authenticators = authenticators
        self.anonymous = anonymous

    def authenticate(self, request: web.Request) -> UserInfo:
        for authenticator in self.authenticators:
            user = authenticator.authenticate(request)
            if user is not None:
                return user
        # a request that presented a token nobody accepted is refused, never downgraded to anonymous
        if self.anonymous and bearer_token(request) is None:
            return UserInfo(ANONYMOUS, [UNAUTHENTICATED])
        raise errors.unauthorized()
