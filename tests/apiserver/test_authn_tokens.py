"""ServiceAccount and bootstrap token authentication in-process (security.md §3.1 AUTHN-09..15, §3.2 BOOT-05/06/08)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apiserver.test_authn_helpers import b64, create, delete, get, make_context, pod, service_account
from kubelite.apiserver.authn import EXTRA_CREDENTIAL_ID, EXTRA_POD_NAME, EXTRA_POD_UID, Authentication
from kubelite.apiserver.bootstrap_tokens import BootstrapTokenAuthenticator, delete_expired_bootstrap_tokens
from kubelite.apiserver.serviceaccount_tokens import (
    DEFAULT_ISSUER,
    ServiceAccountTokens,
    fill_legacy_token_secret,
    key_id,
    parse_go_duration,
)


@pytest.fixture
async def env(tmp_path):
    ctx, pki = await make_context(tmp_path)
    tokens = ServiceAccountTokens(ctx, pki.sa_key_pem, pki.sa_pub_pem)
    yield ctx, pki, tokens
    await ctx.store.close()


def _parts(token: str) -> tuple[dict, dict]:
    head, payload, _ = token.split(".")
    dec = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (head, payload)]
    return dec[0], dec[1]


def test_parse_go_duration():
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("48h") == 172800
    assert parse_go_duration("600s") == 600
    assert parse_go_duration("900") == 900
    assert parse_go_duration("0") == 0
    with pytest.raises(ValueError):
        parse_go_duration("ten minutes")


async def test_bound_token_shape_and_user(env):
    ctx, pki, tokens = env
    sa = await service_account(ctx, "bob")
    token = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600))
    header, claims = _parts(token)
    assert header == {"alg": "ES256", "kid": key_id(pki.sa_pub_pem)}
    assert claims["iss"] == DEFAULT_ISSUER and claims["sub"] == "system:serviceaccount:default:bob"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {"namespace": "default",
                                       "serviceaccount": {"name": "bob", "uid": sa["metadata"]["uid"]}}
    result = await tokens.authenticate_token(token)
    assert result is not None and result.user is not None
    user = result.user
    assert user.name == "system:serviceaccount:default:bob"
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:default"]
    assert user.uid == sa["metadata"]["uid"]
    assert user.extra == {EXTRA_CREDENTIAL_ID: [f"JTI={claims['jti']}"]}
    assert result.audiences == [DEFAULT_ISSUER]


async def test_expired_token_refused_after_leeway(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    now = time.time()
    within = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 600, now=now - 630))  # 30 s past exp
    beyond = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 600, now=now - 700))  # 100 s past exp
    assert (await tokens.authenticate_token(within)).user is not None
    refused = await tokens.authenticate_token(beyond)
    assert refused.user is None and refused.error == "service account token has expired"
    future = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 600, now=now + 300))
    assert (await tokens.authenticate_token(future)).error == "service account token is not valid yet"


async def test_wrong_audience_refused(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    token = tokens.sign(tokens.bound_claims(sa, ["vault"], 3600))
    refused = await tokens.authenticate_token(token)
    assert refused.user is None
    assert refused.error == ('token audiences ["vault"] is invalid for the target audiences '
                             '["https://kubernetes.default.svc.cluster.local"]')
    accepted = await tokens.authenticate_token(token, ["vault"])
    assert accepted.user is not None and accepted.audiences == ["vault"]


async def test_forged_tokens_refused(env):
    ctx, pki, tokens = env
    sa = await service_account(ctx, "bob")
    claims = tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600)
    other_key = ec.generate_private_key(ec.SECP256R1())
    signed_elsewhere = jwt.encode(claims, other_key, algorithm="ES256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    public_as_hmac = jwt.encode(claims, "x" * 32, algorithm="HS256")
    good = tokens.sign(claims)
    head, payload, sig = good.split(".")
    changed = dict(claims, sub="system:serviceaccount:kube-system:admin")
    tampered_payload = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
    tampered = f"{head}.{tampered_payload}.{sig}"
    for forged in (signed_elsewhere, unsigned, public_as_hmac, tampered):
        result = await tokens.authenticate_token(forged)
        assert result is not None and result.user is None, forged
    # a JWT from an issuer we do not serve is not ours at all (other authenticators may try it)
    foreign = jwt.encode(dict(claims, iss="https://accounts.example.com"), other_key, algorithm="ES256")
    assert await tokens.authenticate_token(foreign) is None
    assert pki.sa_pub_pem  # the fixture's key signed `good`
    assert (await tokens.authenticate_token(good)).user is not None


async def test_deleted_or_recreated_service_account_refused(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    token = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600))
    assert (await tokens.authenticate_token(token)).user is not None
    await delete(ctx, "serviceaccounts", "default", "bob")
    assert (await tokens.authenticate_token(token)).user is None
    await service_account(ctx, "bob")  # same name, new uid
    refused = await tokens.authenticate_token(token)
    assert refused.user is None and "does not match claim" in refused.error


async def test_pod_bound_token(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    p = await pod(ctx, "web", "bob")
    token = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600, pod=p))
    user = (await tokens.authenticate_token(token)).user
    assert user is not None
    assert user.extra[EXTRA_POD_NAME] == ["web"] and user.extra[EXTRA_POD_UID] == [p["metadata"]["uid"]]
    await delete(ctx, "pods", "default", "web")
    refused = await tokens.authenticate_token(token)
    assert refused.user is None and refused.error == "service account token has been invalidated"
    await pod(ctx, "web", "bob")  # same name, new uid
    assert (await tokens.authenticate_token(token)).user is None


async def test_secret_bound_token(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    s = await create(ctx, "secrets", "default", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    token = tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600, secret=s))
    assert (await tokens.authenticate_token(token)).user is not None
    await delete(ctx, "secrets", "default", "s")
    assert (await tokens.authenticate_token(token)).user is None


async def _legacy_secret(ctx, pki, tokens, name="bob-token", sa="bob"):
    await create(ctx, "secrets", "default", {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa}}})
    return await fill_legacy_token_secret(ctx, tokens, pki.ca_cert_pem, "default", name)


async def test_legacy_secret_filled_and_authenticates(env):
    ctx, pki, tokens = env
    sa = await service_account(ctx, "bob")
    assert await _legacy_secret(ctx, pki, tokens) == "filled"
    secret = await get(ctx, "secrets", "default", "bob-token")
    data = secret["data"]
    assert base64.b64decode(data["ca.crt"]) == pki.ca_cert_pem
    assert base64.b64decode(data["namespace"]) == b"default"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
    token = base64.b64decode(data["token"]).decode()
    _, claims = _parts(token)
    assert claims["iss"] == "kubernetes/serviceaccount"
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "bob-token"
    assert "exp" not in claims
    user = (await tokens.authenticate_token(token)).user
    assert user is not None and user.name == "system:serviceaccount:default:bob" and user.uid == sa["metadata"]["uid"]
    # a second pass leaves the token alone
    assert await fill_legacy_token_secret(ctx, tokens, pki.ca_cert_pem, "default", "bob-token") == "unchanged"
    await delete(ctx, "secrets", "default", "bob-token")
    refused = await tokens.authenticate_token(token)
    assert refused.user is None


async def test_legacy_token_refused_without_service_account(env):
    ctx, pki, tokens = env
    await service_account(ctx, "bob")
    await _legacy_secret(ctx, pki, tokens)
    token = base64.b64decode((await get(ctx, "secrets", "default", "bob-token"))["data"]["token"]).decode()
    await delete(ctx, "serviceaccounts", "default", "bob")
    assert (await tokens.authenticate_token(token)).user is None


async def test_legacy_secret_of_missing_service_account_is_deleted(env):
    ctx, pki, tokens = env
    assert await _legacy_secret(ctx, pki, tokens, name="ghost-token", sa="ghost") == "deleted"
    assert await get(ctx, "secrets", "default", "ghost-token") is None


async def test_legacy_token_must_match_stored_copy(env):
    ctx, pki, tokens = env
    sa = await service_account(ctx, "bob")
    await _legacy_secret(ctx, pki, tokens)
    # a validly signed legacy token naming the Secret, but not the one stored in it
    forged_claims = _parts(tokens.legacy_token(sa, "bob-token"))[1] | {"extra": "x"}
    forged = tokens.sign(forged_claims)
    refused = await tokens.authenticate_token(forged)
    assert refused.user is None and refused.error == "token does not match server's copy"


# ---------------------------------------------------------------- bootstrap tokens


async def _bootstrap_secret(ctx, token_id="abcdef", secret="0123456789abcdef", *, namespace="kube-system",
                            type_="bootstrap.kubernetes.io/token", usage="true", expiration=None, extra=None,
                            name=None):
    data = {"token-id": b64(token_id), "token-secret": b64(secret), "usage-bootstrap-authentication": b64(usage)}
    if expiration:
        data["expiration"] = b64(expiration)
    if extra is not None:
        data["auth-extra-groups"] = b64(extra)
    await create(ctx, "secrets", namespace, {"apiVersion": "v1", "kind": "Secret", "type": type_,
                                             "metadata": {"name": name or f"bootstrap-token-{token_id}"},
                                             "data": data})


def _rfc3339(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_bootstrap_token_authenticates(env):
    ctx, _, _ = env
    await _bootstrap_secret(ctx, expiration=_rfc3339(timedelta(hours=2)),
                            extra="system:bootstrappers:kubeadm:default-node-token")
    auth = BootstrapTokenAuthenticator(ctx, [DEFAULT_ISSUER])
    result = await auth.authenticate_token("abcdef.0123456789abcdef")
    assert result.user.name == "system:bootstrap:abcdef"
    assert result.user.groups == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"]
    assert await auth.authenticate_token("abcdef.0123456789abcdee") is None  # wrong secret


@pytest.mark.parametrize("kwargs, token", [
    ({"expiration": "2000-01-01T00:00:00Z"}, "abcdef.0123456789abcdef"),  # BOOT-05
    ({}, "ABCDEF.0123456789abcdef"),  # BOOT-06 malformed
    ({}, "abcdef.0123456789abcde"),
    ({"usage": "false"}, "abcdef.0123456789abcdef"),  # BOOT-06 usage
    ({"namespace": "default"}, "abcdef.0123456789abcdef"),  # BOOT-08 namespace
    ({"type_": "Opaque"}, "abcdef.0123456789abcdef"),  # BOOT-08 type
    ({"name": "token-abcdef"}, "abcdef.0123456789abcdef"),  # BOOT-08 name
    ({"extra": "system:masters"}, "abcdef.0123456789abcdef"),  # extra groups must be bootstrappers'
])
async def test_bootstrap_token_refused(env, kwargs, token):
    ctx, _, _ = env
    await _bootstrap_secret(ctx, **kwargs)
    assert await BootstrapTokenAuthenticator(ctx).authenticate_token(token) is None
    chain = Authentication([BootstrapTokenAuthenticator(ctx)], anonymous=True)
    assert await chain.authenticate_token(token) is None


async def test_token_cleaner_removes_expired(env):
    ctx, _, _ = env
    await _bootstrap_secret(ctx, "aaaaaa", expiration="2000-01-01T00:00:00Z")
    await _bootstrap_secret(ctx, "bbbbbb", expiration=_rfc3339(timedelta(hours=1)))
    await _bootstrap_secret(ctx, "cccccc")
    assert await delete_expired_bootstrap_tokens(ctx) == ["bootstrap-token-aaaaaa"]
    assert await get(ctx, "secrets", "kube-system", "bootstrap-token-aaaaaa") is None
    assert await get(ctx, "secrets", "kube-system", "bootstrap-token-bbbbbb") is not None


async def test_chain_adds_authenticated_group(env):
    ctx, _, tokens = env
    sa = await service_account(ctx, "bob")
    chain = Authentication([tokens, BootstrapTokenAuthenticator(ctx)], anonymous=True,
                           api_audiences=[DEFAULT_ISSUER])
    result = await chain.authenticate_token(tokens.sign(tokens.bound_claims(sa, [DEFAULT_ISSUER], 3600)))
    assert result.user.groups[-1] == "system:authenticated"
    assert await chain.authenticate_token("garbage") is None


def test_key_id_is_stable_per_key():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(pem) == key_id(pem) and len(key_id(pem)) == 43
