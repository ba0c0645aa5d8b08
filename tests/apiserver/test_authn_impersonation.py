"""The authentication chain on requests, and impersonation with upstream's checks and messages."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubelite.api.errors import ApiError
from kubelite.apiserver.authn import Authentication, TokenFileAuthenticator, UserInfo
from kubelite.apiserver.impersonation import impersonate
from kubelite.pki.tokenfile import parse_token_file


def _request(headers: list[tuple[str, str]] | None = None, path: str = "/api/v1/pods"):
    return make_mocked_request("GET", path, headers=CIMultiDict(headers or []))


class RecordingAuthorizer:
    """Allows what `allowed` lists as (resource, name); records every question."""

    def __init__(self, allowed: set[tuple[str, str]] | None = None, allow_all: bool = False) -> None:
        self.allowed = allowed or set()
        self.allow_all = allow_all
        self.asked: list[tuple[str, str, str, str, str, str]] = []

    def authorize(self, user, info):
        self.asked.append((info.verb, info.group, info.resource, info.subresource, info.namespace, info.name))
        return self.allow_all or (info.resource, info.name) in self.allowed, ""


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text('s3cret,alice,u1,"dev,ops"\n')
    return parse_token_file(str(path))


async def test_anonymous_and_bad_tokens(token_file):
    chain = Authentication([TokenFileAuthenticator(token_file)], anonymous=True)
    anon = await chain.authenticate(_request())
    assert anon.name == "system:anonymous" and anon.groups == ["system:unauthenticated"]
    alice = await chain.authenticate(_request([("Authorization", "Bearer s3cret")]))
    assert alice.name == "alice" and alice.groups == ["dev", "ops", "system:authenticated"] and alice.uid == "u1"
    with pytest.raises(ApiError) as e:
        await chain.authenticate(_request([("Authorization", "Bearer nope")]))
    assert e.value.code == 401 and e.value.reason == "Unauthorized"
    closed = Authentication([TokenFileAuthenticator(token_file)], anonymous=False)
    with pytest.raises(ApiError) as e:
        await closed.authenticate(_request())
    assert e.value.code == 401


async def test_no_headers_no_change():
    user = UserInfo("alice", ["system:authenticated"])
    assert await impersonate(_request(), user, RecordingAuthorizer()) is user


async def test_impersonate_user_forbidden_message():
    user = UserInfo("x", ["system:authenticated"])
    with pytest.raises(ApiError) as e:
        await impersonate(_request([("Impersonate-User", "admin")]), user, RecordingAuthorizer())
    assert e.value.code == 403 and e.value.reason == "Forbidden"
    assert e.value.message == ('users "admin" is forbidden: User "x" cannot impersonate resource "users" '
                               'in API group "" at the cluster scope')


async def test_impersonate_user_groups_extra_uid():
    authz = RecordingAuthorizer(allow_all=True)
    headers = [("Impersonate-User", "jane"), ("Impersonate-Group", "dev"), ("Impersonate-Group", "qa"),
               ("Impersonate-Uid", "1234"), ("Impersonate-Extra-Scopes", "view"),
               ("Impersonate-Extra-Scopes", "edit"), ("Impersonate-Extra-example.com%2fteam", "a")]
    acting = await impersonate(_request(headers), UserInfo("root", ["system:masters"]), authz)
    assert acting.name == "jane" and acting.uid == "1234"
    assert acting.groups == ["dev", "qa", "system:authenticated"]
    assert acting.extra == {"scopes": ["view", "edit"], "example.com/team": ["a"]}
    assert ("impersonate", "", "users", "", "", "jane") in authz.asked
    assert ("impersonate", "", "groups", "", "", "qa") in authz.asked
    assert ("impersonate", "authentication.k8s.io", "uids", "", "", "1234") in authz.asked
    assert ("impersonate", "authentication.k8s.io", "userextras", "scopes", "", "edit") in authz.asked


async def test_impersonate_service_account_gets_its_groups():
    authz = RecordingAuthorizer(allowed={("serviceaccounts", "bot")})
    acting = await impersonate(_request([("Impersonate-User", "system:serviceaccount:ns1:bot")]),
                               UserInfo("root"), authz)
    assert acting.name == "system:serviceaccount:ns1:bot"
    assert acting.groups == ["system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"]
    assert authz.asked == [("impersonate", "", "serviceaccounts", "", "ns1", "bot")]


async def test_service_account_forbidden_names_namespace():
    with pytest.raises(ApiError) as e:
        await impersonate(_request([("Impersonate-User", "system:serviceaccount:ns1:bot")]), UserInfo("x"),
                          RecordingAuthorizer())
    assert e.value.message == ('serviceaccounts "bot" is forbidden: User "x" cannot impersonate resource '
                               '"serviceaccounts" in API group "" in the namespace "ns1"')


async def test_extra_forbidden_message():
    authz = RecordingAuthorizer(allowed={("users", "jane")})
    with pytest.raises(ApiError) as e:
        await impersonate(_request([("Impersonate-User", "jane"), ("Impersonate-Extra-scopes", "view")]),
                          UserInfo("x"), authz)
    assert e.value.message == ('userextras.authentication.k8s.io "view" is forbidden: User "x" cannot impersonate '
                               'resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope')


async def test_impersonate_anonymous_and_unauthenticated_groups():
    authz = RecordingAuthorizer(allow_all=True)
    anon = await impersonate(_request([("Impersonate-User", "system:anonymous")]), UserInfo("root"), authz)
    assert anon.groups == ["system:unauthenticated"]
    explicit = await impersonate(_request([("Impersonate-User", "jane"),
                                           ("Impersonate-Group", "system:unauthenticated")]), UserInfo("root"), authz)
    assert explicit.groups == ["system:unauthenticated"]


async def test_group_without_user_is_refused():
    with pytest.raises(ApiError) as e:
        await impersonate(_request([("Impersonate-Group", "system:masters")]), UserInfo("x"),
                          RecordingAuthorizer(allow_all=True))
    assert e.value.code == 500
    assert "requested [{Group  system:masters    }] without impersonating a user" in e.value.message
