import pytest

from kubelite.kubelet.images.reference import InvalidReference, familiar_name, normalize, parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,want", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:latest", "docker.io/library/nginx:latest"),
    ("nginx:1.25-alpine", "docker.io/library/nginx:1.25-alpine"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("bitnami/redis", "docker.io/bitnami/redis:latest"),
    ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("k8s.gcr.io/pause", "k8s.gcr.io/pause:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("127.0.0.1:5000/research/busybox", "127.0.0.1:5000/research/busybox:latest"),
    ("[::1]:5000/a/b:c", "[::1]:5000/a/b:c"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}"),
    ("a.b/c/d/e_f__g-h:t.1", "a.b/c/d/e_f__g-h:t.1"),
])
def test_normalisation_table(text, want):
    assert normalize(text) == want


def test_parts_and_pull_object():
    r = parse(f"127.0.0.1:5000/x/y:1@{D}")
    assert (r.domain, r.path, r.tag, r.digest, r.object) == ("127.0.0.1:5000", "x/y", "1", D, D)
    assert parse("nginx").object == "latest"
    assert parse("nginx", default_tag=False).tag is None
    assert parse("nginx").familiar == "nginx:latest"
    assert familiar_name("docker.io/bitnami/redis") == "bitnami/redis"
    assert familiar_name("quay.io/a/b") == "quay.io/a/b"


@pytest.mark.parametrize("text,msg", [
    ("", "invalid reference format"),
    ("Nginx", "invalid reference format: repository name (library/Nginx) must be lowercase"),
    ("nginx:", "invalid reference format"),
    ("nginx:bad tag", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("nginx@sha256:abc", "invalid reference format"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    (" nginx", "invalid reference format"),
])
def test_invalid(text, msg):
    with pytest.raises(InvalidReference) as e:
        parse(text)
    assert msg in str(e.value)
