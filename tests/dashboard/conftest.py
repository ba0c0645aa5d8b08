"""Fixtures for the dashboard route tests: the dashboard served over HTTPS (certificate from the session
cluster's CA) in the test's event loop, against the session API server, and tokens of two ServiceAccounts."""

from __future__ import annotations

import os
import ssl
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from kubelite.dashboard import ApiServer, build_app
from kubelite.dashboard.addon import bind, server_ssl_context
from kubelite.pki.ca import ensure_cluster_pki


@dataclass
class Tokens:
    namespace: str
    admin: str  # cluster-admin, as the article's admin-user
    nobody: str  # a ServiceAccount without any binding
    nobody_user: str


@pytest.fixture(scope="module")
def tokens(cluster) -> Tokens:
    ns = f"dash-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns, check=True)
    cluster.kubectl("-n", ns, "create", "serviceaccount", "admin-user", check=True)
    cluster.kubectl("-n", ns, "create", "serviceaccount", "nobody", check=True)
    cluster.kubectl("create", "clusterrolebinding", f"{ns}-admin", "--clusterrole=cluster-admin",
                    f"--serviceaccount={ns}:admin-user", check=True)
    admin = cluster.kubectl("-n", ns, "create", "token", "admin-user", check=True).stdout.strip()
    nobody = cluster.kubectl("-n", ns, "create", "token", "nobody", check=True).stdout.strip()
    yield Tokens(ns, admin, nobody, f"system:serviceaccount:{ns}:nobody")
    cluster.kubectl("delete", "clusterrolebinding", f"{ns}-admin", "--wait=false")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.fixture(scope="module")
def serving_cert(cluster, tmp_path_factory) -> tuple[str, str, str]:
    pki = ensure_cluster_pki(cluster.data_dir)
    cert, key = pki.issue_server_cert("kubernetes-dashboard", ["localhost"], ["127.0.0.1"])
    d = tmp_path_factory.mktemp("dash-pki")
    cert_file, key_file = str(d / "tls.crt"), str(d / "tls.key")
    with open(cert_file, "wb") as f:
        f.write(cert)
    with open(key_file, "wb") as f:
        f.write(key)
    return cert_file, key_file, pki.ca_cert_path


@dataclass
class Dashboard:
    url: str
    ca_file: str
    app: web.Application

    def browser(self) -> aiohttp.ClientSession:
        """A client keeping cookies (Secure ones too: this is HTTPS), not following redirects by itself."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return aiohttp.ClientSession(self.url, connector=aiohttp.TCPConnector(ssl=ctx),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.fixture
async def dashboard(cluster, serving_cert):
    cert_file, key_file, ca_file = serving_cert
    app = build_app(ApiServer(cluster.url, ca_file=ca_file), token_ttl=int(os.environ.get("DASH_TTL", "900")))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = bind("127.0.0.1", 0)
    assert sock is not None
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=server_ssl_context(cert_file, key_file)).start()
    yield Dashboard(f"https://127.0.0.1:{port}", ca_file, app)
    await runner.cleanup()
