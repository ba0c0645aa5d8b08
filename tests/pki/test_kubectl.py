"""The real kubectl against an aiohttp server using our serving context and our kubeconfig."""

import asyncio
import json
import os
import shutil

import pytest

from kubelite.pki import ensure_cluster_pki, write_kubeconfig

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


async def _kubectl(tmp_path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(tmp_path)
    cache = tmp_path / "kubectl-cache"
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--cache-dir",
        str(cache),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


def _admin_kubeconfig(pki, server, path) -> str:
    write_kubeconfig(
        str(path),
        server=server.url,
        ca_pem=pki.ca_cert_pem,
        client_cert_pem=pki.admin_cert_pem,
        client_key_pem=pki.admin_key_pem,
    )
    return str(path)


async def test_kubectl_version_with_client_cert(server, pki, tmp_path):
    kc = _admin_kubeconfig(pki, server, tmp_path / "admin.conf")
    code, out, err = await _kubectl(tmp_path, "--kubeconfig", kc, "version", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["serverVersion"]["minor"] == "33"
    hits = [s for s in server.seen if s["path"] == "/version"]
    assert hits
    assert all(s["identity"] == ("kubernetes-admin", ["system:masters"]) for s in hits)
    assert all(s["authorization"] is None for s in hits)


async def test_kubectl_token_flag_sends_bearer(server, pki, tmp_path):
    kc = _admin_kubeconfig(pki, server, tmp_path / "admin.conf")
    code, out, err = await _kubectl(tmp_path, "--kubeconfig", kc, "--token", "abc.0123456789", "version", "-o", "json")
    assert code == 0, err
    hits = [s for s in server.seen if s["path"] == "/version"]
    assert hits and all(s["authorization"] == "Bearer abc.0123456789" for s in hits)


async def test_kubectl_token_only_kubeconfig(server, pki, tmp_path):
    kc = tmp_path / "token.conf"
    write_kubeconfig(str(kc), server=server.url, ca_pem=pki.ca_cert_pem, token="tok-xyz", user="bob")
    code, out, err = await _kubectl(tmp_path, "--kubeconfig", str(kc), "version", "-o", "json")
    assert code == 0, err
    hits = [s for s in server.seen if s["path"] == "/version"]
    assert hits and all(s["authorization"] == "Bearer tok-xyz" and s["identity"] is None for s in hits)


async def test_kubectl_rejects_server_from_other_ca(server, pki, tmp_path):
    other = ensure_cluster_pki(str(tmp_path / "other"))
    kc = tmp_path / "wrong-ca.conf"
    write_kubeconfig(str(kc), server=server.url, ca_pem=other.ca_cert_pem, token="t")
    code, out, err = await _kubectl(tmp_path, "--kubeconfig", str(kc), "version", "-o", "json")
    assert code != 0
    assert "x509" in err or "certificate" in err
    assert not server.seen


async def test_official_python_client_with_our_kubeconfig(server, pki, tmp_path):
    kubernetes = pytest.importorskip("kubernetes")
    kc = _admin_kubeconfig(pki, server, tmp_path / "admin.conf")

    def call():
        api_client = kubernetes.config.new_client_from_config(config_file=kc)
        with api_client:
            return kubernetes.client.VersionApi(api_client).get_code()

    info = await asyncio.to_thread(call)
    assert info.minor == "33"
    assert server.seen[-1]["path"] == "/version/"  # the Python client asks with a trailing slash
    assert server.seen[-1]["identity"] == ("kubernetes-admin", ["system:masters"])
