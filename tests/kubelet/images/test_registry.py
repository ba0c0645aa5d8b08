"""Manifests, platform selection, mirrors and rewrites, credentials and the bearer-token dance."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp import web

from images.build_test_image import busybox_image
from kubelite.kubelet.images import (
    Platform,
    RegistriesConfig,
    RegistryClient,
    RegistryError,
    auths_from_secrets,
    find_credentials,
)
from kubelite.kubelet.images.registry import parse_challenge, select_platform


def _entry(arch, variant=None, os_="linux", digest=None):
    p = {"os": os_, "architecture": arch} | ({"variant": variant} if variant else {})
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest or f"d-{arch}-{variant}",
            "platform": p}


def test_select_platform_table():
    index = {"manifests": [_entry("unknown", os_="unknown", digest="attest"), _entry("arm", "v6"),
                           _entry("arm", "v7"), _entry("arm64", "v8"), _entry("amd64"), _entry("s390x")]}
    assert select_platform(index, Platform("linux", "amd64"))["digest"] == "d-amd64-None"
    assert select_platform(index, Platform("linux", "arm64", "v8"))["digest"] == "d-arm64-v8"
    assert select_platform(index, Platform("linux", "arm64"))["digest"] == "d-arm64-v8"
    assert select_platform(index, Platform("linux", "arm", "v7"))["digest"] == "d-arm-v7"
    assert select_platform(index, Platform("linux", "riscv64")) is None
    assert select_platform({"manifests": [_entry("amd64", os_="windows")]}, Platform()) is None


async def test_index_picks_host_platform(pushed):
    async with RegistryClient(pushed.mirror_config(), platform=Platform("linux", "amd64")) as c:
        r = await c.resolve("multi")
    assert r.repo_digest == pushed.digests["multi"]
    assert r.manifest_digest == pushed.images["multi"].manifest_digest
    async with RegistryClient(pushed.mirror_config(), platform=Platform("linux", "arm64", "v8")) as c:
        r = await c.resolve("multi")
    assert r.manifest_digest == pushed.images["multi-arm64"].manifest_digest
    async with RegistryClient(pushed.mirror_config(), platform=Platform("linux", "ppc64le")) as c:
        with pytest.raises(RegistryError, match="no match for platform in manifest"):
            await c.resolve("multi")


async def test_docker_schema2_and_by_digest(pushed):
    async with RegistryClient(pushed.mirror_config()) as c:
        r = await c.resolve("docker-v2")
        assert r.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        by_digest = await c.resolve(f"docker-v2@{r.manifest_digest}")
        assert by_digest.manifest == r.manifest
        with pytest.raises(RegistryError) as e:
            await c.resolve("busybox:nosuch")
    assert str(e.value) == "docker.io/library/busybox:nosuch: not found" and e.value.kind == "NotFound"


def test_endpoints_order_and_rewrites():
    cfg = RegistriesConfig.from_dict({"mirrors": {
        "docker.io": {"endpoint": ["mirror.example.com:5000", "http://10.0.0.1/v2"],
                      "rewrite": {"^library/(.*)": "mirror/$1"}},
        "*": {"endpoint": ["https://catch-all.example"]}}})
    eps = cfg.endpoints("docker.io")
    assert [e.url for e in eps] == ["https://mirror.example.com:5000/v2", "http://10.0.0.1/v2",
                                    "https://registry-1.docker.io/v2"]
    assert eps[0].repository("library/nginx") == "mirror/nginx"
    assert eps[-1].repository("library/nginx") == "library/nginx"   # never rewritten at the default endpoint
    assert [e.url for e in cfg.endpoints("quay.io")] == ["https://catch-all.example/v2", "https://quay.io/v2"]
    assert [e.url for e in cfg.endpoints("127.0.0.1:5000")][-1] == "http://127.0.0.1:5000/v2"
    off = RegistriesConfig.from_dict({"mirrors": {"docker.io": {"endpoint": ["m.example"]}}},
                                     disable_default_endpoint=True)
    assert [e.url for e in off.endpoints("docker.io")] == ["https://m.example/v2"]


async def test_seed_gotok8s_mapping_as_rewrite(pushed, tmp_path):
    """The seed's `k8s.gcr.io/x=gotok8s/x` is a mirror of k8s.gcr.io with a rewrite."""
    f = tmp_path / "registries.yaml"
    f.write_text(f"""
mirrors:
  k8s.gcr.io:
    endpoint:
      - "{pushed.registry.url}"
    rewrite:
      "^(.*)$": "gotok8s/$1"
  docker.io:
    endpoint: ["{pushed.registry.url}"]
    rewrite:
      "^library/rewritten$": "mirror/rewritten"
""")
    cfg = RegistriesConfig.load(str(f), disable_default_endpoint=True)
    async with RegistryClient(cfg) as c:
        r = await c.resolve("k8s.gcr.io/pause:3.9")
        assert r.repository == "gotok8s/pause"
        assert r.manifest_digest == pushed.digests[f"{pushed.host}/gotok8s/pause:3.9"]
        r = await c.resolve("rewritten:1.0")
        assert r.repository == "mirror/rewritten"


def test_credentials_matching():
    def auth(u, p):
        return {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
    docs = [{"auths": {"https://index.docker.io/v1/": auth("hub", "1"), "reg.example:5000": auth("port", "2"),
                       "*.corp.example": auth("glob", "3"), "reg.example/team": auth("team", "4"),
                       "reg.example": {"username": "plain", "password": "5"}}}]
    assert find_credentials(docs, "docker.io", "library/nginx").username == "hub"
    assert find_credentials(docs, "registry-1.docker.io").password == "1"
    assert find_credentials(docs, "reg.example:5000").username == "port"
    assert find_credentials(docs, "a.corp.example").username == "glob"
    assert find_credentials(docs, "a.b.corp.example") is None
    assert find_credentials(docs, "reg.example", "team/app").username == "team"
    assert find_credentials(docs, "reg.example", "other/app").username == "plain"
    assert find_credentials(docs, "quay.io") is None
    secret = {"type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": base64.b64encode(json.dumps(docs[0]).encode()).decode()}}
    assert auths_from_secrets([secret]) == docs


def test_parse_challenge():
    scheme, p = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/nginx:pull"')
    assert scheme == "bearer" and p["realm"] == "https://auth.docker.io/token"
    assert p["scope"] == "repository:library/nginx:pull" and p["service"] == "registry.docker.io"


class FakeAuthRegistry:
    """A registry that wants a bearer token from its token server, which wants user/pass (or a basic-auth
    registry when `basic`)."""

    def __init__(self, basic: bool = False):
        self.basic = basic
        self.image = busybox_image()
        self.token_requests: list[dict] = []
        self.url = ""

    def _authorized(self, request: web.Request) -> bool:
        want = ("Basic " + base64.b64encode(b"alice:s3cret").decode()) if self.basic else "Bearer tok-123"
        return request.headers.get("Authorization") == want

    def _challenge(self, request: web.Request) -> web.Response:
        repo = request.match_info.get("repo", "")
        header = 'Basic realm="fake"' if self.basic else (
            f'Bearer realm="{self.url}/token",service="fake-registry",scope="repository:{repo}:pull"')
        return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                 status=401, headers={"WWW-Authenticate": header})

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            return web.json_response({"details": "incorrect username or password"}, status=401)
        assert request.query["service"] == "fake-registry"
        return web.json_response({"token": "tok-123", "expires_in": 300})

    async def manifest(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._challenge(request)
        if request.match_info["repo"] != "private/app":
            return web.json_response({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]},
                                     status=404)
        return web.Response(body=self.image.manifest, content_type="application/vnd.oci.image.manifest.v1+json")

    async def blob(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._challenge(request)
        return web.Response(body=self.image.blobs[request.match_info["digest"]])

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.manifest)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self.blob)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def _dockerconfig(host, user="alice", password="s3cret"):
    return [{"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}]


async def test_bearer_token_flow(store):
    async with FakeAuthRegistry() as fake, RegistryClient() as c:
        with pytest.raises(RegistryError) as e:
            await c.resolve(f"{fake.host}/private/app:1")
        assert "failed to authorize: failed to fetch anonymous token: unexpected status from GET request to " \
               f"{fake.url}/token?" in str(e.value) and "401 Unauthorized" in str(e.value)
        with pytest.raises(RegistryError, match="oauth token"):
            await c.resolve(f"{fake.host}/private/app:1", auths=_dockerconfig(fake.host, password="wrong"))
        auths = _dockerconfig(fake.host)
        r = await c.resolve(f"{fake.host}/private/app:1", auths=auths)
        assert r.manifest_digest == fake.image.manifest_digest
        assert fake.token_requests[-1]["scope"] == "repository:private/app:pull"
        n = len(fake.token_requests)
        cfg = await c.fetch_blob_bytes(r, fake.image.config_digest)
        assert cfg == fake.image.config
        await c.resolve(f"{fake.host}/private/app:1", auths=auths)
        assert len(fake.token_requests) == n   # the token is cached for its lifetime


async def test_basic_auth_from_registries_yaml():
    async with FakeAuthRegistry(basic=True) as fake:
        async with RegistryClient() as c:
            with pytest.raises(RegistryError, match="no basic auth credentials"):
                await c.resolve(f"{fake.host}/private/app:1")
        cfg = RegistriesConfig.from_dict({"configs": {fake.host: {"auth": {"username": "alice",
                                                                           "password": "s3cret"}}}})
        async with RegistryClient(cfg) as c:
            r = await c.resolve(f"{fake.host}/private/app:1")
        assert r.manifest_digest == fake.image.manifest_digest


async def test_connection_refused_message():
    from images.build_test_image import free_port

    port = free_port()
    async with RegistryClient() as c:
        with pytest.raises(RegistryError) as e:
            await c.resolve(f"127.0.0.1:{port}/x/y:1")
    assert str(e.value) == (f'failed to do request: Get "http://127.0.0.1:{port}/v2/x/y/manifests/1": '
                            f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    assert e.value.kind == "Unavailable"


async def test_tls_settings_from_registries_yaml(tmp_path):
    import ssl

    from kubelite.pki.ca import ensure_cluster_pki

    pki = ensure_cluster_pki(str(tmp_path / "data"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(f"{pki.dir}/apiserver.crt", f"{pki.dir}/apiserver.key")
    img = busybox_image()

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=img.manifest, content_type="application/vnd.oci.image.manifest.v1+json")

    app = web.Application()
    app.router.add_get("/v2/{repo:.+}/manifests/{ref}", manifest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    host = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        def cfg(tls):
            return RegistriesConfig.from_dict({"mirrors": {"docker.io": {"endpoint": [f"https://{host}"]}},
                                               "configs": {host: {"tls": tls}}}, disable_default_endpoint=True)
        async with RegistryClient(cfg({})) as c:
            with pytest.raises(RegistryError, match="tls: failed to verify certificate: x509: certificate "
                                                     "signed by unknown authority"):
                await c.resolve("busybox")
        for tls in ({"ca_file": f"{pki.dir}/ca.crt"}, {"insecure_skip_verify": True}):
            async with RegistryClient(cfg(tls)) as c:
                assert (await c.resolve("busybox")).manifest_digest == img.manifest_digest
    finally:
        await runner.cleanup()
