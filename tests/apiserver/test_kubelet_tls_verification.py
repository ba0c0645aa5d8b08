"""KUBELET-06: with --kubelet-certificate-authority the API server talks only to kubelets whose serving
certificate that CA issued for the address it dials; without it (upstream's default) it does not verify."""

from __future__ import annotations

import asyncio
import ssl
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from kubelite.apiserver.pod_proxy import _kubelet_ssl
from kubelite.kubelet.server import self_signed_context, serving_context
from kubelite.pki.ca import ensure_cluster_pki


async def _serve(tls: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    app = web.Application()
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _get(client_tls: ssl.SSLContext, port: int) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"https://127.0.0.1:{port}/healthz", ssl=client_tls) as r:
            return await r.text()


def _ctx(data_dir: str, ca: str | None):
    return SimpleNamespace(config=SimpleNamespace(data_dir=data_dir, kubelet_certificate_authority=ca))


async def test_kubelet_06_verified_only_with_the_ca(tmp_path):
    data = str(tmp_path / "data")
    pki = ensure_cluster_pki(data)
    cert, key = pki.issue_server_cert("system:node:n1", ["n1"], ["127.0.0.1"])
    (tmp_path / "k.crt").write_bytes(cert)
    (tmp_path / "k.key").write_bytes(key)
    genuine = serving_context(str(tmp_path / "k.crt"), str(tmp_path / "k.key"), pki.ca_cert_pem)
    impostor = self_signed_context("n1", ["127.0.0.1"], b"", str(tmp_path / "mitm"))
    verifying = _kubelet_ssl(_ctx(data, pki.ca_cert_path), web.Application())
    trusting = _kubelet_ssl(_ctx(data, None), web.Application())
    for tls, ok_verifying in ((genuine, True), (impostor, False)):
        runner, port = await _serve(tls)
        try:
            assert await _get(trusting, port) == "ok"  # upstream's default: no verification
            if ok_verifying:
                assert await _get(verifying, port) == "ok"
            else:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await _get(verifying, port)
        finally:
            await runner.cleanup()
    await asyncio.sleep(0)
