"""Plugins that are off by default, switched on with --enable-admission-plugins (ADM-03, AlwaysPullImages),
and a default-on plugin switched off."""

from __future__ import annotations

import pytest

from kubelite_cluster import Cluster, free_port

from .test_rest_semantics import session


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    base = tmp_path_factory.mktemp("strict")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"),
                extra_args=["--enable-admission-plugins", "DenyServiceExternalIPs,AlwaysPullImages",
                            "--disable-admission-plugins", "DefaultTolerationSeconds"])
    c.start()
    yield session(c)
    c.stop()


def _svc(name, ips):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], "externalIPs": ips}}


def test_adm_03_external_ips_denied(strict):
    r = strict.post(strict.base + "/api/v1/namespaces/default/services", json=_svc("ext", ["1.2.3.4"]))
    assert r.status_code == 403
    assert r.json()["message"] == 'services "ext" is forbidden: Use of external IPs is denied by admission control'
    assert strict.post(strict.base + "/api/v1/namespaces/default/services", json=_svc("plain", [])).status_code == 201


def test_external_ips_allowed_by_default(cluster):
    http = session(cluster)
    r = http.post(http.base + "/api/v1/namespaces/default/services", json=_svc("ext-ok", ["1.2.3.4"]))
    assert r.status_code == 201, r.text
    http.delete(http.base + "/api/v1/namespaces/default/services/ext-ok")


def test_always_pull_images_and_disabled_plugin(strict):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pull"},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent"}]}}
    r = strict.post(strict.base + "/api/v1/namespaces/default/pods", json=pod)
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == "Always"
    assert "tolerations" not in spec  # DefaultTolerationSeconds is off


def test_unknown_plugin_refuses_to_start(tmp_path):
    c = Cluster(data_dir=str(tmp_path / "d"), port=free_port(), cache_dir=str(tmp_path / "c"),
                extra_args=["--enable-admission-plugins", "NoSuchPlugin"])
    with pytest.raises(RuntimeError, match="NoSuchPlugin"):
        c.start(timeout=10)
