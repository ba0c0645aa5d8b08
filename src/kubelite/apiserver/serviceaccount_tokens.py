"""ServiceAccount tokens: JWTs signed with the cluster's SA key (ES256), as upstream issues and checks them.

- Bound tokens come from the TokenRequest API (`POST .../serviceaccounts/<sa>/token`, `kubectl create token`):
  issuer `--service-account-issuer`, audiences (default `--api-audiences`), exp/iat/nbf/jti, and the private
  claim `kubernetes.io` naming the namespace, the ServiceAccount and the Pod, Secret or Node the token is
  bound to. Such a token stops working once its ServiceAccount or bound object is gone or was re-created
  (another uid), or once it expired.
- Legacy tokens live in Secrets of type `kubernetes.io/service-account-token`; `fill_legacy_token_secret`
  writes them (upstream's token controller in kube-controller-manager does this; `TokenController` runs it
  inside the API server until kubelite has a controller manager). They have no expiry and stop working
  when the Secret or the ServiceAccount is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from ..api import errors
from ..api.resources import ResourceType
from ..api.timefmt import format_rfc3339, parse_rfc3339
from ..storage.interface import CompactedError
from . import codec, rest
from .authn import (
    EXTRA_CREDENTIAL_ID,
    EXTRA_NODE_NAME,
    EXTRA_NODE_UID,
    EXTRA_POD_NAME,
    EXTRA_POD_UID,
    TokenResult,
    UserInfo,
)
from .context import ApiContext
from .request_info import RequestInfo
from .responses import object_response

log = logging.getLogger("kubelite.apiserver")

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
ALGORITHM = "ES256"  # the only algorithm accepted: sa.key is an EC P-256 key
LEEWAY = 60  # seconds, as go-jose's DefaultLeeway
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600
# kubelet asks 3607 s for projected tokens; upstream then issues a one-year token that warns after 3607 s
WARN_ONLY_EXPIRATION = 3607
EXTENDED_EXPIRATION = 365 * 24 * 3600

SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"

_LEGACY_PREFIX = "kubernetes.io/serviceaccount/"
_SA_PREFIX = "system:serviceaccount:"
_CACHE_SIZE = 4096


def make_username(namespace: str, name: str) -> str:
    return f"{_SA_PREFIX}{namespace}:{name}"


def split_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:<ns>:<name>`, or None for any other user name."""
    if not username.startswith(_SA_PREFIX):
        return None
    parts = username[len(_SA_PREFIX):].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def group_names(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as `1h30m`, `48h`, `600s` (a bare number is seconds)."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return float(text)
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("time: invalid duration \"\"")
    return total


def key_id(public_pem: bytes) -> str:
    """Upstream's `kid`: unpadded base64url of sha256 over the DER SubjectPublicKeyInfo."""
    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


def _go_quoted_list(items: list[str]) -> str:
    return "[" + " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "]"


async def _get_object(ctx: ApiContext, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    rt = ctx.registry.get("", "v1", resource)
    if rt is None or not name:
        return None
    kv = await ctx.store.get(rt.key(namespace, name))
    return None if kv is None else codec.decode_kv(kv)


def _deleted_before(obj: dict[str, Any], cutoff: datetime) -> bool:
    ts = parse_rfc3339((obj.get("metadata") or {}).get("deletionTimestamp"))
    return ts is not None and ts < cutoff


class _Refused(Exception):
    """A token of ours that must not authenticate; the message is what TokenReview reports."""


class ServiceAccountTokens:
    """Issues bound and legacy ServiceAccount tokens and authenticates both kinds."""

    def __init__(self, ctx: ApiContext, private_pem: bytes, public_pem: bytes, *,
                 issuers: list[str] | None = None, api_audiences: list[str] | None = None,
                 max_expiration: float = 0, extend_expiration: bool = True) -> None:
        self.ctx = ctx
        self.private_key = serialization.load_pem_private_key(private_pem, password=None)
        self.public_key = serialization.load_pem_public_key(public_pem)
        self.kid = key_id(public_pem)
        self.issuers = list(issuers or [DEFAULT_ISSUER])
        self.issuer = self.issuers[0]  # the one new tokens carry; the others are still accepted
        self.api_audiences = list(api_audiences or self.issuers[:1])
        self.max_expiration = int(max_expiration)
        self.extend_expiration = extend_expiration
        # signature checks are the expensive part; claims of verified tokens are kept, time checks are not
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # ------------------------------------------------------------ issuing

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"typ": None, "kid": self.kid})

    def bound_claims(self, sa: dict[str, Any], audiences: list[str], expiration: int, *,
                     pod: dict[str, Any] | None = None, secret: dict[str, Any] | None = None,
                     node: dict[str, Any] | None = None, warn_after: int = 0,
                     now: float | None = None) -> dict[str, Any]:
        issued = int(now if now is not None else time.time())
        meta = sa["metadata"]
        private: dict[str, Any] = {"namespace": meta["namespace"],
                                   "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")}}
        if node is not None:
            private["node"] = _ref(node)
        if pod is not None:
            private["pod"] = _ref(pod)
        elif secret is not None:
            private["secret"] = _ref(secret)
        if warn_after:
            private["warnafter"] = issued + warn_after
        return {"aud": list(audiences), "exp": issued + expiration, "iat": issued,
                "iss": self.issuer, "jti": str(uuid.uuid4()), "kubernetes.io": private,
                "nbf": issued, "sub": make_username(meta["namespace"], meta["name"])}

    def legacy_token(self, sa: dict[str, Any], secret_name: str) -> str:
        meta = sa["metadata"]
        ns, name = meta["namespace"], meta["name"]
        return self.sign({
            "iss": LEGACY_ISSUER,
            _LEGACY_PREFIX + "namespace": ns,
            _LEGACY_PREFIX + "secret.name": secret_name,
            _LEGACY_PREFIX + "service-account.name": name,
            _LEGACY_PREFIX + "service-account.uid": meta.get("uid", ""),
            "sub": make_username(ns, name),
        })

    # ------------------------------------------------------------ authenticating

    def _verify(self, token: str) -> dict[str, Any] | None:
        """Signature-checked claims of a token with one of our issuers; None when the token is not ours."""
        cached = self._verified.get(token)
        if cached is not None:
            self._verified.move_to_end(token)
            return cached
        if token.count(".") != 2:
            return None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        if not isinstance(unverified, dict):
            return None
        iss = unverified.get("iss")
        if iss != LEGACY_ISSUER and iss not in self.issuers:
            return None  # someone else's JWT (e.g. an OIDC token): not for this authenticator
        try:
            claims = jwt.decode(token, self.public_key, algorithms=[ALGORITHM],
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False, "verify_iss": False})
        except jwt.PyJWTError:
            raise _Refused("invalid bearer token, token could not be verified") from None
        self._verified[token] = claims
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def authenticate_token(self, token: str, audiences: list[str] | None = None) -> TokenResult | None:
        try:
            claims = self._verify(token)
            if claims is None:
                return None
            if claims.get("iss") == LEGACY_ISSUER:
                return await self._legacy(token, claims, audiences)
            return await self._bound(claims, audiences)
        except _Refused as e:
            return TokenResult(None, [], str(e))

    def _audiences(self, token_auds: list[str], requested: list[str] | None) -> list[str]:
        wanted = list(requested) if requested else list(self.api_audiences)
        auds = [a for a in token_auds if a in wanted]
        if not auds and self.api_audiences:
            raise _Refused(f"token audiences {_go_quoted_list(token_auds)} is invalid for the target audiences "
                           f"{_go_quoted_list(wanted)}")
        return auds

    async def _bound(self, claims: dict[str, Any], requested: list[str] | None) -> TokenResult:
        now = time.time()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not isinstance(exp, int | float):
            raise _Refused("service account token claims could not be validated due to unexpected validation error")
        if now > exp + LEEWAY:
            raise _Refused("service account token has expired")
        if isinstance(nbf, int | float) and now < nbf - LEEWAY:
            raise _Refused("service account token is not valid yet")
        if isinstance(iat, int | float) and now < iat - LEEWAY:
            raise _Refused("service account token is not valid yet")
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else [a for a in (aud or []) if isinstance(a, str)]
        auds = self._audiences(token_auds, requested)
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise _Refused("service account token claims could not be validated due to unexpected private claim")
        namespace = str(private.get("namespace") or "")
        saref = private.get("serviceaccount") or {}
        cutoff = datetime.now(UTC) - timedelta(seconds=LEEWAY)
        sa = await _get_object(self.ctx, "serviceaccounts", namespace, str(saref.get("name") or ""))
        if sa is None:
            raise _Refused(f'serviceaccounts "{saref.get("name")}" not found')
        if _deleted_before(sa, cutoff):
            raise _Refused(f"service account {namespace}/{saref.get('name')} has been deleted")
        if sa["metadata"].get("uid") != saref.get("uid"):
            raise _Refused(f"service account UID ({sa['metadata'].get('uid')}) does not match claim "
                           f"({saref.get('uid')})")
        extra: dict[str, list[str]] = {}
        for kind, resource in (("secret", "secrets"), ("pod", "pods"), ("node", "nodes")):
            ref = private.get(kind)
            if not isinstance(ref, dict):
                continue
            obj = await _get_object(self.ctx, resource, "" if kind == "node" else namespace,
                                    str(ref.get("name") or ""))
            if obj is None or _deleted_before(obj, cutoff):
                if kind == "node":
                    raise _Refused(f"node \"{ref.get('name')}\" not found")
                raise _Refused("service account token has been invalidated")
            if obj["metadata"].get("uid") != ref.get("uid"):
                raise _Refused(f"{kind} UID ({obj['metadata'].get('uid')}) does not match service account "
                               f"{kind} ref claim ({ref.get('uid')})")
            if kind == "pod":
                extra[EXTRA_POD_NAME] = [str(ref.get("name"))]
                extra[EXTRA_POD_UID] = [str(ref.get("uid"))]
            elif kind == "node":
                extra[EXTRA_NODE_NAME] = [str(ref.get("name"))]
                extra[EXTRA_NODE_UID] = [str(ref.get("uid"))]
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = [f"JTI={claims['jti']}"]
        name = str(saref.get("name"))
        user = UserInfo(make_username(namespace, name), group_names(namespace), str(saref.get("uid") or ""), extra)
        return TokenResult(user, auds)

    async def _legacy(self, token: str, claims: dict[str, Any], requested: list[str] | None) -> TokenResult:
        namespace = claims.get(_LEGACY_PREFIX + "namespace")
        secret_name = claims.get(_LEGACY_PREFIX + "secret.name")
        sa_name = claims.get(_LEGACY_PREFIX + "service-account.name")
        sa_uid = claims.get(_LEGACY_PREFIX + "service-account.uid")
        for value, what in ((namespace, "namespace"), (secret_name, "secretName"), (sa_name, "serviceAccountName"),
                            (sa_uid, "serviceAccountUID")):
            if not isinstance(value, str) or not value:
                raise _Refused(f"{what} not found in claims")
        if claims.get("sub") != make_username(namespace, sa_name):
            raise _Refused("sub claim does not match the service account")
        auds = self._audiences(list(self.api_audiences), requested)
        secret = await _get_object(self.ctx, "secrets", namespace, secret_name)
        if secret is None or secret["metadata"].get("deletionTimestamp"):
            raise _Refused("token has been invalidated")
        stored = _unb64((secret.get("data") or {}).get("token")) or b""
        if not hmac.compare_digest(stored, token.encode()):
            raise _Refused("token does not match server's copy")
        sa = await _get_object(self.ctx, "serviceaccounts", namespace, sa_name)
        if sa is None or sa["metadata"].get("deletionTimestamp"):
            raise _Refused(f'serviceaccounts "{sa_name}" not found')
        if sa["metadata"].get("uid") != sa_uid:
            raise _Refused(f"service account UID ({sa['metadata'].get('uid')}) does not match claim ({sa_uid})")
        if (secret["metadata"].get("labels") or {}).get(INVALID_SINCE_LABEL):
            raise _Refused(f"the token in secret {namespace}/{secret_name} for service account {namespace}/{sa_name} "
                           f"has been marked invalid. Use tokens from the TokenRequest API or manually created "
                           f"secret-based tokens, or remove the '{INVALID_SINCE_LABEL}' label from the secret "
                           f"to enable it")
        return TokenResult(UserInfo(make_username(namespace, sa_name), group_names(namespace), sa_uid), auds)

    # ------------------------------------------------------------ the TokenRequest API

    async def token_request(self, ctx: ApiContext, request: web.Request, info: RequestInfo,
                            rt: ResourceType) -> web.StreamResponse:
        """POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token."""
        body, _ = await rest.read_object(request)
        if body.get("kind") not in (None, "", "TokenRequest") or \
                body.get("apiVersion") not in (None, "", "authentication.k8s.io/v1"):
            raise errors.bad_request(f"the body of the request was in an unknown format: expected "
                                     f"authentication.k8s.io/v1, Kind=TokenRequest, got "
                                     f"{body.get('apiVersion')}, Kind={body.get('kind')}")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = DEFAULT_EXPIRATION
        if isinstance(expiration, bool) or not isinstance(expiration, int):
            raise errors.bad_request("spec.expirationSeconds must be an integer")
        causes = []
        if expiration < MIN_EXPIRATION:
            causes.append({"type": "FieldValueInvalid", "field": "spec.expirationSeconds",
                           "message": f"Invalid value: {expiration}: may not specify a duration less than 10 minutes"})
        if expiration > MAX_EXPIRATION:
            causes.append({"type": "FieldValueInvalid", "field": "spec.expirationSeconds",
                           "message": f"Invalid value: {expiration}: may not specify a duration larger than "
                                      f"2^32 seconds"})
        if causes:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", "", causes)
        sa = await _get_object(ctx, "serviceaccounts", info.namespace, info.name)
        if sa is None:
            raise errors.not_found("serviceaccounts", "", info.name)
        pod = secret = node = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref:
            pod, secret, node = await self._bound_object(ctx, info, ref)
        audiences = [a for a in (spec.get("audiences") or []) if isinstance(a, str)] or list(self.api_audiences)
        if self.max_expiration and expiration > self.max_expiration:
            expiration = self.max_expiration
        lifetime, warn_after = expiration, 0
        if (self.extend_expiration and pod is not None and expiration == WARN_ONLY_EXPIRATION
                and set(audiences) <= set(self.api_audiences)):
            lifetime, warn_after = EXTENDED_EXPIRATION, expiration
        if pod is not None and node is None and (pod.get("spec") or {}).get("nodeName"):
            node = await _get_object(ctx, "nodes", "", pod["spec"]["nodeName"])
        now = time.time()
        claims = self.bound_claims(sa, audiences, lifetime, pod=pod, secret=secret, node=node,
                                   warn_after=warn_after, now=now)
        out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": expiration}
        if isinstance(ref, dict) and ref:
            out_spec["boundObjectRef"] = ref
        expires = datetime.fromtimestamp(int(now) + expiration, UTC)
        result = {
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": info.name, "namespace": info.namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": self.sign(claims), "expirationTimestamp": format_rfc3339(expires)},
        }
        return object_response(request, result, 201)

    async def _bound_object(self, ctx: ApiContext, info: RequestInfo, ref: dict[str, Any]):
        api_version = str(ref.get("apiVersion") or "")
        kind = str(ref.get("kind") or "")
        name = str(ref.get("name") or "")
        group, _, version = api_version.rpartition("/")
        pod = secret = node = None
        if group == "" and kind == "Pod":
            pod = obj = await _get_object(ctx, "pods", info.namespace, name)
            resource = "pods"
        elif group == "" and kind == "Secret":
            secret = obj = await _get_object(ctx, "secrets", info.namespace, name)
            resource = "secrets"
        elif group == "" and kind == "Node":
            node = obj = await _get_object(ctx, "nodes", "", name)
            resource = "nodes"
        else:
            raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        if obj is None:
            raise errors.not_found(resource, "", name)
        if pod is not None and (pod.get("spec") or {}).get("serviceAccountName", "default") != info.name:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{info.name}" to pod running with '
                                     f"different serviceaccount name.")
        uid = obj["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(kind, "", name,
                                  f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                                  f"in record ({uid}). The object might have been deleted and then recreated")
        return pod, secret, node


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    return {"name": obj["metadata"]["name"], "uid": obj["metadata"].get("uid", "")}


# ---------------------------------------------------------------- legacy token Secrets (token controller)


def _needs_token(secret: dict[str, Any]) -> bool:
    if secret.get("type") != SECRET_TYPE:
        return False
    meta = secret.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    data = secret.get("data") or {}
    return not (data.get("token") and data.get("ca.crt") and data.get("namespace"))


async def fill_legacy_token_secret(ctx: ApiContext, tokens: ServiceAccountTokens, ca_pem: bytes,
                                   namespace: str, name: str) -> str:
    """Give a `kubernetes.io/service-account-token` Secret its token, ca.crt and namespace, as upstream's token
    controller does after the Secret is created. A Secret whose ServiceAccount does not exist (or has another uid
    than the annotation says) is deleted. Returns what was done: "filled", "deleted" or "unchanged".

    This belongs to the controller manager; it lives here until kubelite has one (see TokenController)."""
    rt = ctx.registry.get("", "v1", "secrets")
    assert rt is not None
    secret = await _get_object(ctx, "secrets", namespace, name)
    if secret is None or not _needs_token(secret):
        return "unchanged"
    annotations = secret["metadata"].get("annotations") or {}
    sa_name = annotations.get(SA_NAME_ANNOTATION, "")
    if not sa_name:
        return "unchanged"  # upstream's validation refuses such a Secret; nothing to bind the token to
    sa = await _get_object(ctx, "serviceaccounts", namespace, sa_name)
    wanted_uid = annotations.get(SA_UID_ANNOTATION)
    info = RequestInfo(is_resource=True, path=rt.path(namespace, name), verb="update", version="v1",
                       namespace=namespace, resource="secrets", name=name)
    if sa is None or sa["metadata"].get("deletionTimestamp") or (wanted_uid and wanted_uid != sa["metadata"]["uid"]):
        with contextlib.suppress(errors.ApiError):
            await rest.delete_object(ctx, rt, info, {}, False)
        return "deleted"
    token = tokens.legacy_token(sa, name)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        if not _needs_token(current):
            return current
        data = current.setdefault("data", {}) or {}
        current["data"] = data
        data.setdefault("ca.crt", _b64(ca_pem))
        data["namespace"] = _b64(namespace)
        if not data.get("token"):
            data["token"] = _b64(token)
        current["metadata"].setdefault("annotations", {})[SA_UID_ANNOTATION] = sa["metadata"]["uid"]
        return current

    await rest.update_object(ctx, rt, info, mutate)
    return "filled"


async def delete_token_secrets_of(ctx: ApiContext, sa: dict[str, Any]) -> list[str]:
    """Upstream's token controller deletes the token Secrets of a deleted ServiceAccount."""
    rt = ctx.registry.get("", "v1", "secrets")
    assert rt is not None
    meta = sa["metadata"]
    namespace = meta["namespace"]
    listed = await ctx.store.list(rt.prefix(namespace))
    deleted = []
    for kv in listed.items:
        secret = codec.decode_kv(kv)
        if secret.get("type") != SECRET_TYPE:
            continue
        annotations = secret["metadata"].get("annotations") or {}
        if annotations.get(SA_NAME_ANNOTATION) != meta["name"]:
            continue
        uid = annotations.get(SA_UID_ANNOTATION)
        if uid and uid != meta.get("uid"):
            continue
        name = secret["metadata"]["name"]
        info = RequestInfo(is_resource=True, path=rt.path(namespace, name), verb="delete", version="v1",
                           namespace=namespace, resource="secrets", name=name)
        with contextlib.suppress(errors.ApiError):
            await rest.delete_object(ctx, rt, info, {}, False)
            deleted.append(name)
    return deleted


class TokenController:
    """Watches Secrets and ServiceAccounts: fills new token Secrets, removes those of deleted ServiceAccounts.

    Runs inside the API server for now; it only uses the store and `rest`, so it can move to the controllers."""

    def __init__(self, ctx: ApiContext, tokens: ServiceAccountTokens, ca_pem: bytes) -> None:
        self.ctx = ctx
        self.tokens = tokens
        self.ca_pem = ca_pem

    async def run(self) -> None:
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except CompactedError:
                continue
            except Exception:
                log.exception("token controller failed; restarting")
                await asyncio.sleep(1)

    async def _run_once(self) -> None:
        secrets = self.ctx.registry.get("", "v1", "secrets")
        sas = self.ctx.registry.get("", "v1", "serviceaccounts")
        assert secrets is not None and sas is not None
        listed = await self.ctx.store.list(secrets.prefix())
        for kv in listed.items:
            await self._secret(codec.decode_kv(kv))
        # one watch over both prefixes' common root would see every resource; two watches keep it narrow
        secret_watch = await self.ctx.store.watch(secrets.prefix(), listed.revision)
        sa_watch = await self.ctx.store.watch(sas.prefix(), listed.revision)
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(w, kind: str) -> None:
            async for event in w:
                await queue.put((kind, event))

        pumps = [asyncio.create_task(pump(secret_watch, "secret")), asyncio.create_task(pump(sa_watch, "sa"))]
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait([getter, *pumps], return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    for p in pumps:
                        if p.done() and p.exception() is not None:
                            raise p.exception()  # type: ignore[misc]
                    return
                kind, event = getter.result()
                if kind == "secret" and event.type == "PUT" and event.value is not None:
                    await self._secret(codec.decode(event.value, event.revision))
                elif kind == "sa" and event.type == "DELETE" and event.prev_value is not None:
                    await delete_token_secrets_of(self.ctx, codec.decode(event.prev_value, event.revision))
        finally:
            for p in pumps:
                p.cancel()
            for w in (secret_watch, sa_watch):
                with contextlib.suppress(Exception):
                    await w.close()

    async def _secret(self, secret: dict[str, Any]) -> None:
        if not _needs_token(secret):
            return
        meta = secret["metadata"]
        try:
            await fill_legacy_token_secret(self.ctx, self.tokens, self.ca_pem, meta["namespace"], meta["name"])
        except errors.ApiError as e:
            log.warning("token controller: secret %s/%s: %s", meta.get("namespace"), meta.get("name"), e)
