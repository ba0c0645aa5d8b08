import asyncio
import ssl

import aiohttp
import pytest

from kubelite.pki import ensure_cluster_pki, peer_identity
from kubelite.pki.tls import client_ssl_context


def _client_ctx(pki, tmp_path, cert_key: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
    if cert_key is None:
        return client_ssl_context(pki)
    cert_path, key_path = tmp_path / "c.crt", tmp_path / "c.key"
    cert_path.write_bytes(cert_key[0])
    key_path.write_bytes(cert_key[1])
    return client_ssl_context(pki, str(cert_path), str(key_path))


async def _get(url: str, ctx: ssl.SSLContext, headers=None) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=ctx, headers=headers) as r:
            assert r.status == 200
            return await r.json()


async def test_client_cert_identity(server, pki, tmp_path):
    ctx = _client_ctx(pki, tmp_path, pki.issue_client_cert("alice", ["dev", "qa"]))
    body = await _get(server.url + "/whoami", ctx)
    assert body["identity"] == ["alice", ["dev", "qa"]]
    assert server.seen[-1]["identity_obj"] == ("alice", ["dev", "qa"])


async def test_admin_cert_identity(server, pki, tmp_path):
    ctx = _client_ctx(pki, tmp_path, (pki.admin_cert_pem, pki.admin_key_pem))
    body = await _get(server.url + "/", ctx)
    assert body["identity"] == ["kubernetes-admin", ["system:masters"]]


async def test_no_client_cert_is_anonymous_and_token_passes(server, pki, tmp_path):
    body = await _get(server.url + "/x", _client_ctx(pki, tmp_path), headers={"Authorization": "Bearer abc"})
    assert body == {"identity": None, "authorization": "Bearer abc"}
    assert server.seen[-1]["identity_obj"] is None


async def test_cert_from_other_ca_is_rejected(server, pki, tmp_path):
    other = ensure_cluster_pki(str(tmp_path / "other"))
    ctx = _client_ctx(pki, tmp_path, other.issue_client_cert("mallory", ["system:masters"]))
    try:
        body = await _get(server.url + "/whoami", ctx)
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        body = None
    # Either the handshake fails (what OpenSSL does) or, at the least, no identity comes through.
    assert body is None or body["identity"] is None
    assert all(s["identity"] is None for s in server.seen)


async def test_server_cert_verifies_for_localhost_and_ip(server, pki, tmp_path):
    ctx = _client_ctx(pki, tmp_path)
    assert ctx.check_hostname
    await _get(f"https://localhost:{server.port}/", ctx)
    await _get(server.url + "/", ctx)


async def test_untrusting_client_fails(server):
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(server.url + "/", ssl.create_default_context())


async def _handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLObject:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    obj = writer.get_extra_info("ssl_object")
    writer.close()
    return obj


def _tls11_client(pki) -> ssl.SSLContext:
    ctx = client_ssl_context(pki)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_1_refused(server, pki):
    # Control: this client does speak TLS 1.1 to a server that allows it.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.set_ciphers("ALL:@SECLEVEL=0")
    permissive.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    permissive.load_cert_chain(pki.serving_cert_path, pki.serving_key_path)
    control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
    try:
        obj = await _handshake(control.sockets[0].getsockname()[1], _tls11_client(pki))
        assert obj.version() == "TLSv1.1"
    finally:
        control.close()
        await control.wait_closed()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(server.port, _tls11_client(pki))


async def test_tls12_weak_cipher_refused_strong_accepted(server, pki):
    ctx = client_ssl_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(server.port, ctx)
    ctx = client_ssl_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    obj = await _handshake(server.port, ctx)
    assert obj.version() == "TLSv1.2"
    assert "GCM" in obj.cipher()[0] or "CHACHA20" in obj.cipher()[0]


async def test_alpn_is_http11_only(server, pki):
    ctx = client_ssl_context(pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    obj = await _handshake(server.port, ctx)
    assert obj.selected_alpn_protocol() == "http/1.1"
    ctx = client_ssl_context(pki)
    ctx.set_alpn_protocols(["h2"])
    try:
        obj = await _handshake(server.port, ctx)
    except (ssl.SSLError, ConnectionError):
        return
    assert obj.selected_alpn_protocol() != "h2"


async def test_plain_http_gets_no_data(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(4096), 5)
    except ConnectionError:
        data = b""
    writer.close()
    assert b"minor" not in data and b"200 OK" not in data
    assert not server.seen


def test_peer_identity_shapes():
    assert peer_identity(None) is None
    assert peer_identity({}) is None
    cert = {
        "subject": (
            (("organizationName", "g1"),),
            (("organizationName", "g2"),),
            (("commonName", "first"),),
            (("commonName", "bob"),),
        )
    }
    assert peer_identity(cert) == ("bob", ["g1", "g2"])
    assert peer_identity({"subject": ((("organizationName", "g"),),)}) is None
