"""The bootstrap signer (upstream's pkg/controller/bootstrap/bootstrapsigner): keeps one detached JWS signature
of `kube-public/cluster-info`'s kubeconfig per signing bootstrap token, under `jws-kubeconfig-<token id>`.

A token signs when its Secret (`kube-system/bootstrap-token-<id>`, type `bootstrap.kubernetes.io/token`) has
`usage-bootstrap-signing: "true"`, a well-formed id and secret, and has not expired. Signatures of tokens that
are gone, expired or no longer signing are removed, so a deleted token can no longer vouch for the CA.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
from typing import Any

from kubelite.apiserver.bootstrap_tokens import NAMESPACE, SECRET_PREFIX, SECRET_TYPE, expired
from kubelite.bootstrap.jws import (
    CLUSTER_INFO,
    KUBECONFIG_KEY,
    PUBLIC_NAMESPACE,
    SIGNATURE_PREFIX,
    compute_detached_signature,
    detached_signature_valid,
)
from kubelite.client import ClientError

from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.bootstrapsigner")

Obj = dict[str, Any]
_ID = re.compile(r"^[a-z0-9]{6}$")
_SECRET = re.compile(r"^[a-z0-9]{16}$")
_KEY = "cluster-info"


def _data(secret: Obj, key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value).decode("utf-8", "replace")
    except ValueError:
        return ""


def signing_tokens(secrets: list[Obj]) -> dict[str, str]:
    """token id -> token secret of every bootstrap token that may sign cluster-info now."""
    tokens: dict[str, str] = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        if secret.get("type") != SECRET_TYPE or meta.get("deletionTimestamp"):
            continue
        token_id, token_secret = _data(secret, "token-id"), _data(secret, "token-secret")
        if not _ID.match(token_id) or not _SECRET.match(token_secret):
            continue
        if meta.get("name") != SECRET_PREFIX + token_id:
            continue
        if _data(secret, "usage-bootstrap-signing") != "true" or expired(secret):
            continue
        tokens[token_id] = token_secret
    return tokens


def signed_data(data: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """`data` with exactly one valid signature per token (valid existing ones are kept as they are)."""
    content = data.get(KUBECONFIG_KEY)
    out = {k: v for k, v in data.items() if not k.startswith(SIGNATURE_PREFIX)}
    if content is None:
        return out
    for token_id, token_secret in sorted(tokens.items()):
        key = SIGNATURE_PREFIX + token_id
        old = data.get(key)
        if old and detached_signature_valid(old, content, token_id, token_secret):
            out[key] = old
        else:
            out[key] = compute_detached_signature(content, token_id, token_secret)
    return out


class BootstrapSigner(Controller):
    name = "bootstrap-signer-controller"
    aliases = ("bootstrapsigner",)
    event_component = "bootstrap-signer"
    service_account = "bootstrap-signer"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=1)
        self.cm_rt = ctx.rt("", "v1", "configmaps")
        self.secret_rt = ctx.rt("", "v1", "secrets")
        self.configmaps = self.informer(self.cm_rt, namespace=PUBLIC_NAMESPACE,
                                        field_selector=f"metadata.name={CLUSTER_INFO}")
        self.secrets = self.informer(self.secret_rt, namespace=NAMESPACE, field_selector=f"type={SECRET_TYPE}")
        for inf in (self.configmaps, self.secrets):
            inf.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)

    def _changed(self, obj: Obj) -> None:
        self.queue.add(_KEY)

    async def start(self) -> None:
        self.queue.add(_KEY)

    async def sync(self, key: str) -> None:
        cm = self.configmaps.get(PUBLIC_NAMESPACE, CLUSTER_INFO)
        if cm is None or cm["metadata"].get("deletionTimestamp"):
            return
        data = dict(cm.get("data") or {})
        if KUBECONFIG_KEY not in data:
            log.debug("bootstrapsigner: %s/%s has no %s", PUBLIC_NAMESPACE, CLUSTER_INFO, KUBECONFIG_KEY)
        wanted = signed_data(data, signing_tokens(self.secrets.list()))
        if wanted == data:
            return
        updated = copy.deepcopy(cm)
        updated["data"] = wanted
        try:
            await self.client.update(self.cm_rt, updated)
        except ClientError as e:
            if not e.is_not_found:
                raise
