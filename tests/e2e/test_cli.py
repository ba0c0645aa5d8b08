"""The `kubelite` command: start, restart with state, kill -9 durability, clear one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import orjson
import requests

from kubelite_cluster import Cluster, free_port


def run_cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "kubelite.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_everywhere():
    for args in ([], ["up"], ["server"], ["kubeconfig-path"]):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and "usage: kubelite" in r.stdout


def test_kubeconfig_path(tmp_path):
    r = run_cli("kubeconfig-path", "--data-dir", str(tmp_path))
    assert r.stdout.strip() == str(tmp_path / "admin.kubeconfig")


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("server", "--data-dir", str(tmp_path / "d"), "--port", str(port))
    assert r.returncode == 1
    assert r.stderr.strip() == f"kubelite: error: port {port} on 127.0.0.1 is already in use"


def test_unwritable_data_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("server", "--data-dir", str(blocker / "sub"), "--port", str(free_port()))
    assert r.returncode == 1
    assert r.stderr.startswith(f"kubelite: error: data dir {blocker / 'sub'} is not writable")
    assert len(r.stderr.strip().splitlines()) == 1


def test_data_dir_and_store_files_are_private(fresh_cluster):
    assert os.stat(fresh_cluster.data_dir).st_mode & 0o777 == 0o700
    for name in os.listdir(fresh_cluster.data_dir):
        if name.startswith("state.db"):
            assert os.stat(os.path.join(fresh_cluster.data_dir, name)).st_mode & 0o777 == 0o600, name
    assert os.stat(fresh_cluster.kubeconfig).st_mode & 0o777 == 0o600


def test_acknowledged_writes_survive_kill_9(tmp_path):
    c = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "cache"))
    c.start()
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(c.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"w{w}-{i}"
            try:
                r = s.post(c.url + "/api/v1/namespaces/default/configmaps", data=orjson.dumps(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
                    headers={"Content-Type": "application/json"}, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 201:
                acknowledged.append(name)
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 200:
        threading.Event().wait(0.02)
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    c.start()
    try:
        items = s.get(c.url + "/api/v1/namespaces/default/configmaps").json()["items"]
        present = {i["metadata"]["name"] for i in items}
        missing = [n for n in acknowledged if n not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        # and the revision counter continues: a new write gets a higher resourceVersion than any old one
        top = max(int(i["metadata"]["resourceVersion"]) for i in items)
        r = s.post(c.url + "/api/v1/namespaces/default/configmaps",
                   json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}})
        assert int(r.json()["metadata"]["resourceVersion"]) > top
    finally:
        c.stop()


def test_restart_keeps_state_and_certificates(fresh_cluster):
    fresh_cluster.kubectl("create", "namespace", "persisted", check=True)
    with open(os.path.join(fresh_cluster.data_dir, "pki", "ca.crt"), "rb") as f:
        ca = f.read()
    fresh_cluster.stop()
    fresh_cluster.start()
    assert "persisted" in fresh_cluster.kubectl("get", "ns", check=True).stdout
    with open(os.path.join(fresh_cluster.data_dir, "pki", "ca.crt"), "rb") as f:
        assert f.read() == ca


def test_token_auth_file_and_clean_ctrl_c(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cr3t-token-value,alice,1001,"dev,qa"\n')
    c = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "cache"),
                extra_args=["--token-auth-file", str(tokens)])
    c.start()
    try:
        ca = os.path.join(c.data_dir, "pki", "ca.crt")
        r = requests.post(c.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", verify=ca,
                          headers={"Authorization": "Bearer s3cr3t-token-value"},
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert r.status_code == 201, r.text
        info = r.json()["status"]["userInfo"]
        assert info["username"] == "alice" and info["uid"] == "1001"
        assert info["groups"] == ["dev", "qa", "system:authenticated"]
        r = requests.get(c.url + "/api/v1/namespaces", verify=ca, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
    finally:
        c.proc.send_signal(signal.SIGINT)
        assert c.proc.wait(10) == 0
