"""Wire differences kubectl 1.27 and 1.33 trip on: stringData on every write, `kubectl autoscale`,
change-cause in DaemonSet/StatefulSet history, the RBAC bootstrap policy whatever the authorization mode."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

from kubectl_output import rows
from kubelite_cluster import Cluster, free_port

KUBECTLS = {"1.27": "/usr/lib/google-cloud-sdk/bin/kubectl.1.27", "1.33": "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"}


def kubectl(cluster: Cluster, version: str, *args: str, input: str | None = None, check: bool = True):
    cmd = [KUBECTLS[version], "--kubeconfig", cluster.kubeconfig, "--cache-dir", f"{cluster.cache_dir}-{version}",
           *args]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {version} {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def wait_for(fn, timeout=30.0, interval=0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last: {last!r}")


def _data(cluster, version, name, ns):
    out = kubectl(cluster, version, "get", "secret", name, "-n", ns, "-o", "json").stdout
    obj = json.loads(out)
    assert "stringData" not in obj
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_secret_string_data_on_create_update_and_patch(cluster, version):
    ns = "sd-" + version.replace(".", "")
    kubectl(cluster, version, "create", "namespace", ns)
    manifest = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}}}\n" \
               "data: {kept: a2VwdA==}\nstringData: {a: hello}\n"
    kubectl(cluster, version, "apply", "-f", "-", input=manifest)
    assert _data(cluster, version, "s", ns) == {"kept": "kept", "a": "hello"}
    kubectl(cluster, version, "patch", "secret", "s", "-n", ns, "-p", '{"stringData":{"b":"strategic"}}')
    assert _data(cluster, version, "s", ns) == {"kept": "kept", "a": "hello", "b": "strategic"}
    kubectl(cluster, version, "patch", "secret", "s", "-n", ns, "--type=merge", "-p", '{"stringData":{"a":"merged"}}')
    assert _data(cluster, version, "s", ns)["a"] == "merged"
    kubectl(cluster, version, "patch", "secret", "s", "-n", ns, "--type=json",
            "-p", '[{"op":"add","path":"/stringData","value":{"c":"json"}}]')
    assert _data(cluster, version, "s", ns)["c"] == "json"
    # an update (replace) whose stringData overrides a key of data
    current = json.loads(kubectl(cluster, version, "get", "secret", "s", "-n", ns, "-o", "json").stdout)
    current["stringData"] = {"kept": "replaced"}
    kubectl(cluster, version, "replace", "-f", "-", input=json.dumps(current))
    assert _data(cluster, version, "s", ns)["kept"] == "replaced"
    # apply again: the last-applied stringData wins over the patched value, as upstream
    kubectl(cluster, version, "apply", "-f", "-", input=manifest)
    assert _data(cluster, version, "s", ns)["a"] == "hello"


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_kubectl_autoscale(cluster, version):
    ns = "hpa-" + version.replace(".", "")
    kubectl(cluster, version, "create", "namespace", ns)
    kubectl(cluster, version, "create", "deployment", "web", "--image=nginx", "-n", ns)
    r = kubectl(cluster, version, "autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=60",
                "-n", ns, "-v=6")
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in r.stdout
    assert "Falling back" not in r.stderr  # 1.33 creates autoscaling/v2 (as protobuf) without the v1 fallback
    hpa = json.loads(kubectl(cluster, version, "get", "hpa.v2.autoscaling", "web", "-n", ns, "-o", "json").stdout)
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    base = tmp_path_factory.mktemp("wire-up")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"), command="up",
                extra_args=["--node-runtime", "simulated", "--cluster-dns-port", "0", "--ingress-http-port", "0",
                            "--ingress-https-port", "0", "--enable-admission-plugins", "TaintNodesByCondition"])
    c.start()
    yield c
    c.stop()


DS = """apiVersion: apps/v1
kind: {kind}
metadata: {{name: {name}, annotations: {{kubernetes.io/change-cause: first}}}}
spec:
  {extra}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: busybox:1.36, command: [sleep, "3600"]}}]
"""


@pytest.mark.parametrize("kind,extra", [("DaemonSet", ""), ("StatefulSet", "serviceName: x")])
def test_change_cause_in_controller_revisions(up, kind, extra):
    name = kind.lower()
    resource = f"{name}/{name}"
    kubectl(up, "1.33", "apply", "-f", "-", input=DS.format(kind=kind, name=name, extra=extra))

    def revisions():
        out = kubectl(up, "1.33", "get", "controllerrevisions", "-l", f"app={name}", "-o", "json").stdout
        return json.loads(out)["items"]

    wait_for(lambda: revisions())
    # one write with the template and the cause, as `--record` makes it
    kubectl(up, "1.33", "patch", resource, "-p", json.dumps({
        "metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}}))
    wait_for(lambda: len(revisions()) == 2)
    for version in KUBECTLS:
        out = kubectl(up, version, "rollout", "history", resource).stdout
        table = rows(out.split("\n", 1)[1])
        assert [r[1] for r in table] == ["first", "second"], out
    causes = {r["revision"]: (r["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
              for r in revisions()}
    assert causes[2] == "second"


def test_rbac_bootstrap_policy_with_always_allow(tmp_path):
    c = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "cache"),
                extra_args=["--authorization-mode", "AlwaysAllow"])
    c.start()
    try:
        for version in KUBECTLS:
            out = kubectl(c, version, "get", "clusterrole", "cluster-admin", "-o", "json").stdout
            assert json.loads(out)["rules"] == [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]}]
        kubectl(c, "1.33", "get", "clusterrolebinding", "cluster-admin", "system:basic-user")
        edit = json.loads(kubectl(c, "1.33", "get", "clusterrole", "edit", "-o", "json").stdout)
        assert any("deployments" in (r.get("resources") or []) for r in edit["rules"])  # aggregated
    finally:
        c.stop()


WARNED = """apiVersion: apps/v1
kind: Deployment
metadata: {name: warned}
spec:
  selector: {matchLabels: {app: warned}}
  template:
    metadata: {labels: {app: warned}}
    spec:
      nodeSelector: {beta.kubernetes.io/os: linux}
      containers:
      - name: c
        image: nginx
        resources: {limits: {memory: "1.5"}}
        env: [{name: A, value: "1"}, {name: A, value: "2"}]
"""


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_warnings_deprecated_api_and_strategy(cluster, version):
    ns = "warn-" + version.replace(".", "")
    kubectl(cluster, version, "create", "namespace", ns)
    for args in (("get", "endpoints", "-n", ns), ("get", "endpoints", "kubernetes", "-n", "default", "-o", "name")):
        r = kubectl(cluster, version, *args)
        assert "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice" in r.stderr
    assert "Warning" not in kubectl(cluster, version, "get", "endpointslices", "-n", ns).stderr
    r = kubectl(cluster, version, "apply", "-n", ns, "-f", "-", input=WARNED)
    assert r.stderr.splitlines() == [
        'Warning: spec.template.spec.nodeSelector[beta.kubernetes.io/os]: deprecated since v1.14; use '
        '"kubernetes.io/os" instead',
        'Warning: spec.template.spec.containers[0].resources.limits[memory]: fractional byte value "1500m" is '
        'invalid, must be an integer',
        'Warning: spec.template.spec.containers[0].env[1]: hides previous definition of "A", which may be dropped '
        'when using apply']
    # an update warns about what the object still holds; a pod spec that does not warn, nothing
    r = kubectl(cluster, version, "label", "deployment", "warned", "-n", ns, "x=y")
    assert "nodeSelector[beta.kubernetes.io/os]" in r.stderr
    r = kubectl(cluster, version, "run", "quiet", "-n", ns, "--image=nginx")
    assert "Warning" not in r.stderr


def test_taint_nodes_by_condition(up):
    """A new Node starts tainted not-ready:NoSchedule (the admission plugin); the node lifecycle controller
    lifts the taint once the node reports Ready."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "tainted-at-birth"},
            "spec": {"taints": [{"key": "example.com/own", "effect": "NoExecute"}]}}
    out = kubectl(up, "1.33", "create", "-f", "-", "-o", "json", input=json.dumps(node)).stdout
    assert json.loads(out)["spec"]["taints"] == [
        {"key": "example.com/own", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    # the simulated node of `up` registered tainted, and is untainted now that it is Ready
    def ready_and_untainted():
        nodes = json.loads(kubectl(up, "1.27", "get", "nodes", "-o", "json").stdout)["items"]
        ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in n["status"].get("conditions") or ())]
        return ready if ready and not any(t["key"] == "node.kubernetes.io/not-ready"
                                          for n in ready for t in n["spec"].get("taints") or ()) else None

    wait_for(ready_and_untainted)


def test_default_ingress_class(cluster):
    ns = "ingdef"
    kubectl(cluster, "1.33", "create", "namespace", ns)
    kubectl(cluster, "1.33", "apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "the-default", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "example.com/ingress"}}))
    try:
        kubectl(cluster, "1.33", "create", "ingress", "web", "-n", ns, "--rule=example.com/=web:80")
        got = json.loads(kubectl(cluster, "1.33", "get", "ingress", "web", "-n", ns, "-o", "json").stdout)
        assert got["spec"]["ingressClassName"] == "the-default"
        kubectl(cluster, "1.33", "create", "ingress", "explicit", "-n", ns, "--class=other",
                "--rule=example.com/=web:80")
        got = json.loads(kubectl(cluster, "1.33", "get", "ingress", "explicit", "-n", ns, "-o", "json").stdout)
        assert got["spec"]["ingressClassName"] == "other"
    finally:
        kubectl(cluster, "1.33", "delete", "ingressclass", "the-default")
