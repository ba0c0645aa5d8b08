"""Wiring of authentication into the API server: the authenticator chain in upstream's order (x509, static
token file, ServiceAccount JWTs, bootstrap tokens), the TokenRequest subresource, the review endpoints and the
token jobs that upstream's controller manager runs (token Secrets, bootstrap token cleaner)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web

from ..pki.ca import ClusterPKI
from ..pki.tokenfile import parse_token_file
from .authn import Authentication, TokenFileAuthenticator, X509Authenticator
from .bootstrap_tokens import BootstrapTokenAuthenticator, run_token_cleaner
from .config import ServerConfig
from .context import ApiContext
from .reviews import Reviews
from .serviceaccount_tokens import DEFAULT_ISSUER, ServiceAccountTokens, TokenController


@dataclass
class AuthnParts:
    authentication: Authentication
    tokens: ServiceAccountTokens
    ca_pem: bytes
    ctx: ApiContext
    clean_interval: float = 5.0
    tasks: list[asyncio.Task] = field(default_factory=list)

    def install(self, app: web.Application) -> None:
        """Register the handlers on the app and run the token jobs while it runs."""
        subresources = dict(app.get("subresource_handlers", {}))
        subresources[("", "serviceaccounts", "token")] = self.tokens.token_request
        app["subresource_handlers"] = subresources
        creates = dict(app.get("create_handlers", {}))
        creates.update(Reviews(self.authentication).handlers())
        app["create_handlers"] = creates
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        controller = TokenController(self.ctx, self.tokens, self.ca_pem)
        self.tasks = [asyncio.create_task(controller.run()),
                      asyncio.create_task(run_token_cleaner(self.ctx, self.clean_interval))]

    async def _stop(self, app: web.Application) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []


def build_authentication(ctx: ApiContext, config: ServerConfig, pki: ClusterPKI) -> AuthnParts:
    """The chain for `config`; raises ValueError for a bad token file."""
    issuers = list(config.service_account_issuers or [DEFAULT_ISSUER])
    audiences = list(config.api_audiences or issuers[:1])
    authenticators: list = [X509Authenticator()]
    if config.token_auth_file:
        authenticators.append(TokenFileAuthenticator(parse_token_file(config.token_auth_file), audiences))
    tokens = ServiceAccountTokens(ctx, pki.sa_key_pem, pki.sa_pub_pem, issuers=issuers, api_audiences=audiences,
                                  max_expiration=config.service_account_max_token_expiration,
                                  extend_expiration=config.service_account_extend_token_expiration)
    authenticators.append(tokens)
    authenticators.append(BootstrapTokenAuthenticator(ctx, audiences))
    authentication = Authentication(authenticators, config.anonymous_auth, audiences)
    return AuthnParts(authentication, tokens, pki.ca_cert_pem, ctx, config.bootstrap_token_clean_interval)
