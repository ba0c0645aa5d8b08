"""The OCI config of a container from the pod spec and the image config."""

from __future__ import annotations

import base64

import pytest

from kubelite.kubelet.runtime import oci

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
       "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [
           {"name": "c", "image": "busybox", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"},
                                                           "requests": {"cpu": "250m"}}}]},
       "status": {"podIP": "10.244.0.5"}}
IMAGE = oci.ImageConfig(entrypoint=["/entry"], cmd=["--flag"], env=["PATH=/bin", "FROM_IMAGE=1"], working_dir="/w")


def test_command_and_args_override_entrypoint_and_cmd():
    env = {"NAME": "world"}
    assert oci.command_line({}, IMAGE, env) == ["/entry", "--flag"]
    assert oci.command_line({"args": ["a"]}, IMAGE, env) == ["/entry", "a"]
    assert oci.command_line({"command": ["sh"]}, IMAGE, env) == ["sh"]  # command drops the image's Cmd
    assert oci.command_line({"command": ["echo"], "args": ["$(NAME)", "$$(NAME)", "$(NOPE)"]}, IMAGE, env) == \
        ["echo", "world", "$(NAME)", "$(NOPE)"]


def test_env_value_from_and_env_from():
    cm = {"data": {"k1": "v1", "k2": "v2"}}
    sec = {"data": {"pw": base64.b64encode(b"s3cret").decode()}}

    def lookup(kind, name):
        return {("configmaps", "cm"): cm, ("secrets", "sec"): sec}.get((kind, name))
    c = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
         "env": [{"name": "A", "value": "x-$(CM_k1)"},
                 {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                 {"name": "K2", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k2"}}},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi",
                                                                    "containerName": "c"}}},
                 {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}
    env = oci.container_env(POD, c, IMAGE, lookup)
    assert env["FROM_IMAGE"] == "1" and env["PATH"] == "/bin"
    assert env["CM_k1"] == "v1" and env["A"] == "x-v1"
    assert env["PW"] == "s3cret" and env["K2"] == "v2"
    assert (env["POD"], env["APP"], env["IP"], env["MEM"]) == ("p", "x", "10.244.0.5", "64")
    assert "OPT" not in env
    assert env["HOSTNAME"] == "p"


def test_env_errors_have_upstreams_messages():
    c = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nokey"}}}]}
    with pytest.raises(oci.ContainerConfigError, match='configmap "cm" not found'):
        oci.container_env(POD, c, IMAGE, lambda k, n: None)
    with pytest.raises(oci.ContainerConfigError, match="couldn't find key nokey in ConfigMap ns/cm"):
        oci.container_env(POD, c, IMAGE, lambda k, n: {"data": {}})


def test_run_as_non_root(tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "securityContext": {"runAsNonRoot": True}}}
    with pytest.raises(oci.ContainerConfigError) as e:
        oci.resolve_user(pod, {"name": "c"}, oci.ImageConfig(), str(tmp_path))
    assert str(e.value) == 'container has runAsNonRoot and image will run as root (pod: "p_ns", container: c)'
    assert oci.resolve_user(pod, {"name": "c", "securityContext": {"runAsUser": 1000, "runAsGroup": 3000}},
                            oci.ImageConfig(), str(tmp_path)) == {"uid": 1000, "gid": 3000}
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1001:1002::/home/app:/bin/sh\n")
    assert oci.resolve_user(POD, {"name": "c"}, oci.ImageConfig(user="app"), str(tmp_path)) == {"uid": 1001,
                                                                                                 "gid": 1002}
    with pytest.raises(oci.ContainerConfigError, match="non-numeric user"):
        oci.resolve_user(pod, {"name": "c"}, oci.ImageConfig(user="nobody-here"), str(tmp_path))


def test_security_and_resources():
    c = {"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
                                          "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                          "seccompProfile": {"type": "RuntimeDefault"}},
         "resources": POD["spec"]["containers"][0]["resources"]}
    cfg = oci.build_config(POD, c, IMAGE, rootfs="/r", env={"A": "1"}, user={"uid": 0, "gid": 0}, mounts=[],
                           netns="/var/run/netns/x", cgroups_path="/kubelite/n/podu/c")
    assert cfg["process"]["capabilities"]["bounding"] == ["CAP_NET_ADMIN"]
    assert cfg["process"]["noNewPrivileges"] is True
    assert cfg["root"] == {"path": "/r", "readonly": True}
    assert cfg["linux"]["seccomp"]["syscalls"][0]["action"] == "SCMP_ACT_ERRNO"
    res = cfg["linux"]["resources"]
    assert res["memory"]["limit"] == 64 * 1024 * 1024
    assert (res["cpu"]["quota"], res["cpu"]["period"], res["cpu"]["shares"]) == (50000, 100000, 256)
    assert {"type": "network", "path": "/var/run/netns/x"} in cfg["linux"]["namespaces"]
    assert cfg["process"]["cwd"] == "/w" and cfg["hostname"] == "p"
    host = {**POD, "spec": {**POD["spec"], "hostNetwork": True, "hostPID": True}}
    cfg = oci.build_config(host, {"name": "c", "securityContext": {"privileged": True}}, IMAGE, rootfs="/r", env={},
                           user={"uid": 0, "gid": 0}, mounts=[], netns=None, cgroups_path="/x")
    types = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert "network" not in types and "pid" not in types
    assert "CAP_SYS_ADMIN" in cfg["process"]["capabilities"]["bounding"]
    assert "seccomp" not in cfg["linux"]


def test_privileged_gets_only_the_capabilities_the_runtime_holds():
    from kubelite.kubelet.runtime import oci

    assert len(oci.CAP_NUMBERS) == 41 and set(oci.ALL_CAPS) <= set(oci.CAP_NUMBERS)
    everything = (1 << 41) - 1
    assert oci.all_held_caps(everything) == oci.ALL_CAPS
    # a sandbox without CAP_SYS_RESOURCE (bit 24) in its bounding set: runc would refuse to hand it on
    held = oci.all_held_caps(everything & ~(1 << 24))
    assert "CAP_SYS_RESOURCE" not in held and "CAP_SYS_ADMIN" in held and len(held) == len(oci.ALL_CAPS) - 1
    caps = oci.capabilities({"securityContext": {"privileged": True}})
    assert set(caps) == set(oci.all_held_caps())
