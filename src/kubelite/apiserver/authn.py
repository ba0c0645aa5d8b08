"""Authentication: a chain of authenticators; the first that recognises the request wins, else 401.

Two kinds of authenticator take part, as upstream's union does:
- request authenticators (`authenticate(request)`): x509 client certificates;
- token authenticators (`authenticate_token(token, audiences)`, sync or async): static token file,
  ServiceAccount JWTs, bootstrap tokens. They are also what a TokenReview asks.

A token authenticator returns None when the token is not its kind, a `TokenResult` otherwise (authenticated
or refused with a reason). A request that presents a bearer token that nobody accepts is 401, never anonymous.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from aiohttp import web

from ..api import errors
from ..pki.tls import peer_identity
from ..pki.tokenfile import TokenFile

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"

# user.Info extra keys upstream sets for ServiceAccount tokens
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(slots=True)
class UserInfo:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS

    def to_json(self) -> dict:
        """The authentication.k8s.io/v1 UserInfo shape (empty fields left out, as Go's omitempty does)."""
        out: dict = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


@dataclass(slots=True)
class TokenResult:
    """What a token authenticator decided about a token it recognised."""

    user: UserInfo | None  # None: refused
    audiences: list[str] = field(default_factory=list)
    error: str = ""


def _with_authenticated(groups: list[str]) -> list[str]:
    return groups if AUTHENTICATED in groups else [*groups, AUTHENTICATED]


def audience_agnostic(api_audiences: list[str], requested: list[str] | None) -> list[str] | None:
    """Audiences a token with no audience of its own (static, bootstrap) is good for: the API audiences
    that were asked for. None when the caller asked only for audiences other than the API server's."""
    if not requested:
        return list(api_audiences)
    if not api_audiences:
        return list(requested)
    common = [a for a in requested if a in api_audiences]
    return common or None


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
    def __init__(self, tokens: TokenFile, api_audiences: list[str] | None = None) -> None:
        self.tokens = tokens
        self.api_audiences = list(api_audiences or [])

    def authenticate_token(self, token: str, audiences: list[str] | None = None) -> TokenResult | None:
        found = self.tokens.lookup(token)
        if found is None:
            return None
        auds = audience_agnostic(self.api_audiences, audiences)
        if auds is None:
            return TokenResult(None, [], "token audiences are invalid for the target audiences")
        user, uid, groups = found
        return TokenResult(UserInfo(user, list(groups), uid), auds)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authentication:
    """The authenticator chain of the API server.

    `authenticators` may mix request and token authenticators; the order given is the order tried.
    `api_audiences` are the audiences a request to this server implies (upstream's --api-audiences).
    """

    def __init__(self, authenticators: list, anonymous: bool = True, api_audiences: list[str] | None = None) -> None:
        self.request_authenticators = [a for a in authenticators if hasattr(a, "authenticate")]
        self.token_authenticators = [a for a in authenticators if hasattr(a, "authenticate_token")]
        self.anonymous = anonymous
        self.api_audiences = list(api_audiences or [])

    def add(self, authenticator) -> None:
        if hasattr(authenticator, "authenticate"):
            self.request_authenticators.append(authenticator)
        if hasattr(authenticator, "authenticate_token"):
            self.token_authenticators.append(authenticator)

    async def authenticate(self, request: web.Request) -> UserInfo:
        for authenticator in self.request_authenticators:
            user = authenticator.authenticate(request)
            if inspect.isawaitable(user):
                user = await user
            if user is not None:
                return user
        token = bearer_token(request)
        if token is not None:
            result = await self.authenticate_token(token)
            if result is not None and result.user is not None:
                return result.user
            # a request that presented a token nobody accepted is refused, never downgraded to anonymous
            raise errors.unauthorized()
        if self.anonymous:
            return UserInfo(ANONYMOUS, [UNAUTHENTICATED])
        raise errors.unauthorized()

    async def authenticate_token(self, token: str, audiences: list[str] | None = None) -> TokenResult | None:
        """The first token authenticator's verdict that accepts the token; else the refusals, joined.

        The user of an accepted token always carries system:authenticated. None: nobody recognised it."""
        refusals: list[str] = []
        for authenticator in self.token_authenticators:
            result = authenticator.authenticate_token(token, audiences)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                continue
            if result.user is not None:
                result.user.groups = _with_authenticated(list(result.user.groups))
                return result
            if result.error:
                refusals.append(result.error)
        if refusals:
            return TokenResult(None, [], refusals[0] if len(refusals) == 1 else "[" + ", ".join(refusals) + "]")
        return None
