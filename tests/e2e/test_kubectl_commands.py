"""kubectl's object commands against kubelite, with output shapes as upstream prints them.

describe (events through fieldSelector=involvedObject.*), diff, edit, annotate, label, set, patch (three types),
wait, the get output formats, api-resources, server dry-run, cascading deletes, scale, rollout history, events,
explain, and applying every manifest in tests/fixtures twice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kubectl_output import header, rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


def _ns(cluster, name: str) -> str:
    cluster.kubectl("create", "namespace", name, check=True)
    return name


def _json(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json", check=True).stdout)


def _deploy(cluster, tmp_path, ns: str, text: str = DEPLOYMENT) -> str:
    path = tmp_path / f"deploy-{ns}.yaml"
    path.write_text(text)
    cluster.kubectl("apply", "-f", str(path), "-n", ns, check=True)
    return str(path)


def _event(cluster, ns: str, name: str, kind: str, api_version: str, obj: dict, reason: str, message: str,
           last: str = "2024-05-01T10:00:00Z", etype: str = "Normal") -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
             "involvedObject": {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
                                "namespace": ns, "uid": obj["metadata"]["uid"]},
             "reason": reason, "message": message, "type": etype, "source": {"component": "test-controller"},
             "firstTimestamp": last, "lastTimestamp": last, "count": 1}
    cluster.kubectl("create", "-f", "-", input=json.dumps(event), check=True)


def _fields(text: str) -> dict[str, str]:
    """The `Key:  value` lines of describe output at the top level."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Za-z -]*):\s+(.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


# ---------------------------------------------------------------- describe


def test_describe_pod_shows_its_events(cluster):
    ns = _ns(cluster, "desc-pod")
    cluster.kubectl("run", "nginx", "--image=nginx:1.25", "--port=80", "--labels=app=nginx", "-n", ns, check=True)
    pod = _json(cluster, "pod", "nginx", "-n", ns)
    _event(cluster, ns, "nginx.1", "Pod", "v1", pod, "Scheduled", f"Successfully assigned {ns}/nginx to node01")
    # an event for another object with the same name must not show
    _event(cluster, ns, "other.1", "ConfigMap", "v1", {"metadata": {"name": "nginx", "uid": "x"}},
           "Other", "not for the pod")
    out = cluster.kubectl("describe", "pod", "nginx", "-n", ns, check=True).stdout
    f = _fields(out)
    assert f["Name"] == "nginx" and f["Namespace"] == ns and f["Node"] == "<none>"
    assert f["Labels"] == "app=nginx" and f["Status"] == "Pending" and f["QoS Class"] == "BestEffort"
    assert re.search(r"^Containers:\n  nginx:\n    Image:\s+nginx:1.25\n    Port:\s+80/TCP", out, re.M)
    events = out[out.index("Events:"):].splitlines()
    assert re.split(r"\s{2,}", events[1].strip()) == ["Type", "Reason", "Age", "From", "Message"]
    assert re.split(r"\s{2,}", events[3].strip())[:2] == ["Normal", "Scheduled"]
    assert events[3].strip().endswith(f"test-controller  Successfully assigned {ns}/nginx to node01")
    assert "not for the pod" not in out


def test_describe_deployment_replicaset_and_their_events(cluster, tmp_path):
    ns = _ns(cluster, "desc-apps")
    _deploy(cluster, tmp_path, ns)
    dep = _json(cluster, "deploy", "web", "-n", ns)
    _event(cluster, ns, "web.1", "Deployment", "apps/v1", dep, "ScalingReplicaSet",
           "Scaled up replica set web-7d4b9c to 1")
    out = cluster.kubectl("describe", "deployment", "web", "-n", ns, check=True).stdout
    f = _fields(out)
    assert f["Replicas"] == "1 desired | 0 updated | 0 total | 0 available | 0 unavailable"
    assert f["StrategyType"] == "RollingUpdate" and f["Selector"] == "app=web"
    assert "ScalingReplicaSet" in out and "Scaled up replica set web-7d4b9c to 1" in out

    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-7d4b9c", "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                       "annotations": {"deployment.kubernetes.io/revision": "1"},
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                            "uid": dep["metadata"]["uid"], "controller": True,
                                            "blockOwnerDeletion": True}]},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                   "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                                "spec": dep["spec"]["template"]["spec"]}}}
    cluster.kubectl("create", "-f", "-", "-n", ns, input=json.dumps(rs), check=True)
    out = cluster.kubectl("describe", "replicaset", "web-7d4b9c", "-n", ns, check=True).stdout
    f = _fields(out)
    assert f["Name"] == "web-7d4b9c" and f["Controlled By"] == "Deployment/web"
    assert f["Replicas"] == "0 current / 1 desired"
    assert f["Pods Status"] == "0 Running / 0 Waiting / 0 Succeeded / 0 Failed"
    assert f["Selector"] == "app=web,pod-template-hash=7d4b9c"
    # describe deployment now finds the new ReplicaSet through the owner reference
    out = cluster.kubectl("describe", "deployment", "web", "-n", ns, check=True).stdout
    assert re.search(r"NewReplicaSet:\s+web-7d4b9c \(0/1 replicas created\)", out), out
    history = cluster.kubectl("rollout", "history", "deployment", "web", "-n", ns, check=True).stdout
    assert header(history.split("\n", 1)[1]) == ["REVISION", "CHANGE-CAUSE"]
    assert rows(history.split("\n", 1)[1]) == [["1", "<none>"]]


def test_describe_service_namespace_secret_serviceaccount_node(cluster):
    ns = _ns(cluster, "desc-misc")
    cluster.kubectl("create", "service", "clusterip", "db", "--tcp=5432:5432", "-n", ns, check=True)
    f = _fields(cluster.kubectl("describe", "service", "db", "-n", ns, check=True).stdout)
    assert f["Type"] == "ClusterIP" and f["Selector"] == "app=db" and f["TargetPort"] == "5432/TCP"
    assert re.fullmatch(r"5432-5432\s+5432/TCP", f["Port"])

    out = cluster.kubectl("describe", "namespace", ns, check=True).stdout
    f = _fields(out)
    assert f["Name"] == ns and f["Status"] == "Active"
    assert f["Labels"] == f"kubernetes.io/metadata.name={ns}"
    assert "No resource quota." in out and "No LimitRange resource." in out
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
             "spec": {"hard": {"pods": "10"}}}
    cluster.kubectl("create", "-f", "-", "-n", ns, input=json.dumps(quota), check=True)
    out = cluster.kubectl("describe", "namespace", ns, check=True).stdout
    # the rows come from status.hard/used, which the quota controller fills: none yet, as upstream without it
    assert re.search(r"Resource Quotas\n  Name:\s+q\n  Resource\s+Used\s+Hard\n  --------\s+---\s+---\n", out), out

    cluster.kubectl("create", "secret", "generic", "creds", "--from-literal=password=hunter22", "-n", ns,
                    check=True)
    out = cluster.kubectl("describe", "secret", "creds", "-n", ns, check=True).stdout
    assert re.search(r"Type:\s+Opaque\n\nData\n====\npassword:\s+8 bytes", out), out
    assert "hunter22" not in out

    cluster.kubectl("create", "serviceaccount", "robot", "-n", ns, check=True)
    f = _fields(cluster.kubectl("describe", "serviceaccount", "robot", "-n", ns, check=True).stdout)
    assert f["Name"] == "robot" and f["Mountable secrets"] == "<none>" and f["Tokens"] == "<none>"
    assert f["Image pull secrets"] == "<none>" and f["Events"] == "<none>"

    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "desc-node", "labels": {"kubernetes.io/hostname": "desc-node"}},
            "spec": {"podCIDR": "10.244.3.0/24"}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(node), check=True)
    stored = _json(cluster, "node", "desc-node")
    assert stored["spec"]["podCIDRs"] == ["10.244.3.0/24"]
    out = cluster.kubectl("describe", "node", "desc-node", check=True).stdout
    f = _fields(out)
    assert f["Name"] == "desc-node" and f["Roles"] == "<none>" and f["Unschedulable"] == "false"
    assert f["PodCIDR"] == "10.244.3.0/24" and f["PodCIDRs"] == "10.244.3.0/24"
    assert "Non-terminated Pods:" in out and "Allocated resources:" in out
    out = cluster.kubectl("get", "nodes", check=True).stdout
    assert header(out) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    cluster.kubectl("delete", "node", "desc-node", check=True)


# ---------------------------------------------------------------- diff, edit


def test_diff_uses_server_dry_run_and_exit_codes(cluster, tmp_path):
    ns = _ns(cluster, "diffing")
    path = _deploy(cluster, tmp_path, ns)
    same = cluster.kubectl("diff", "-f", path, "-n", ns)
    assert same.returncode == 0 and same.stdout == "", same.stderr
    Path(path).write_text(DEPLOYMENT.replace("replicas: 1", "replicas: 3"))
    changed = cluster.kubectl("diff", "-f", path, "-n", ns)
    assert changed.returncode == 1, changed.stderr
    assert re.search(r"^-  replicas: 1$", changed.stdout, re.M) and re.search(r"^\+  replicas: 3$", changed.stdout, re.M)
    assert re.search(r"^-  generation: 1$", changed.stdout, re.M)
    assert "managedFields" not in changed.stdout
    # the dry run wrote nothing
    assert _json(cluster, "deploy", "web", "-n", ns)["spec"]["replicas"] == 1
    new = tmp_path / "new.yaml"
    new.write_text(DEPLOYMENT.replace("name: web\n", "name: web2\n"))
    created = cluster.kubectl("diff", "-f", str(new), "-n", ns)
    assert created.returncode == 1 and re.search(r"^\+  name: web2$", created.stdout, re.M)
    assert cluster.kubectl("get", "deploy", "web2", "-n", ns).returncode == 1


def test_edit_with_a_scripted_editor(cluster, tmp_path):
    ns = _ns(cluster, "editing")
    _deploy(cluster, tmp_path, ns)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i -e 's/image: nginx:1.25/image: nginx:1.27/' "
                      "-e 's/^  labels:$/  labels:\\n    edited: \"yes\"/' \"$1\"\n")
    editor.chmod(0o755)
    env = {**os.environ, "EDITOR": str(editor), "KUBE_EDITOR": str(editor)}
    cmd = ["/usr/bin/kubectl", "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir]
    r = subprocess.run([*cmd, "edit", "deployment", "web", "-n", ns], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deployment.apps/web edited"
    dep = _json(cluster, "deploy", "web", "-n", ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert dep["metadata"]["labels"] == {"app": "web", "edited": "yes"}
    assert dep["metadata"]["generation"] == 2

    env["EDITOR"] = env["KUBE_EDITOR"] = "true"
    r = subprocess.run([*cmd, "edit", "deployment", "web", "-n", ns], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "Edit cancelled, no changes made."

    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nsed -i 's/replicas: 1/replicas: -1/' \"$1\"\n")
    bad.chmod(0o755)
    env["EDITOR"] = env["KUBE_EDITOR"] = str(bad)
    r = subprocess.run([*cmd, "edit", "deployment", "web", "-n", ns], env=env, capture_output=True, text=True,
                       timeout=60)
    # kubectl writes the causes into the file it reopens; the scripted editor changes nothing the second time
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == 'error: deployments.apps "web" is invalid'
    assert re.fullmatch(r'A copy of your changes has been stored to ".*\.yaml"', lines[1])
    assert lines[2] == "error: Edit cancelled, no valid changes were saved."
    assert _json(cluster, "deploy", "web", "-n", ns)["spec"]["replicas"] == 1


# ---------------------------------------------------------------- annotate, label, set, patch


def test_annotate_label_and_set(cluster, tmp_path):
    ns = _ns(cluster, "setting")
    _deploy(cluster, tmp_path, ns)
    d = ("deployment/web", "-n", ns)
    assert cluster.kubectl("annotate", *d, "owner=team-a", check=True).stdout.strip() == \
        "deployment.apps/web annotated"
    refused = cluster.kubectl("annotate", *d, "owner=team-b")
    assert refused.returncode == 1 and "'owner' already has a value (team-a)" in refused.stderr
    cluster.kubectl("annotate", *d, "owner=team-b", "--overwrite", check=True)
    assert _json(cluster, *d)["metadata"]["annotations"]["owner"] == "team-b"
    assert cluster.kubectl("annotate", *d, "owner-", check=True).stdout.strip() == "deployment.apps/web annotated"
    assert "owner" not in _json(cluster, *d)["metadata"]["annotations"]
    assert cluster.kubectl("label", *d, "tier=frontend", check=True).stdout.strip() == "deployment.apps/web labeled"
    assert cluster.kubectl("label", *d, "tier-", check=True).stdout.strip() == "deployment.apps/web unlabeled"

    r = cluster.kubectl("set", "image", *d, "nginx=nginx:1.26", check=True)
    assert r.stdout.strip() == "deployment.apps/web image updated"
    r = cluster.kubectl("set", "env", *d, "MODE=prod", "LEVEL=3", check=True)
    assert r.stdout.strip() == "deployment.apps/web env updated"
    listed = cluster.kubectl("set", "env", *d, "--list", check=True).stdout
    assert listed.splitlines() == ["# Deployment web, container nginx", "MODE=prod", "LEVEL=3"]
    r = cluster.kubectl("set", "resources", *d, "-c=nginx", "--limits=cpu=200m,memory=512Mi",
                        "--requests=cpu=100m", check=True)
    assert r.stdout.strip() == "deployment.apps/web resource requirements updated"
    c = _json(cluster, *d)["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "nginx:1.26"
    assert c["env"] == [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "3"}]
    assert c["resources"] == {"limits": {"cpu": "200m", "memory": "512Mi"}, "requests": {"cpu": "100m"}}
    r = cluster.kubectl("set", "env", *d, "MODE-", check=True)
    assert r.stdout.strip() == "deployment.apps/web env updated"
    c = _json(cluster, *d)["spec"]["template"]["spec"]["containers"][0]
    assert c["env"] == [{"name": "LEVEL", "value": "3"}]


def test_patch_three_types_and_no_change(cluster):
    ns = _ns(cluster, "patching")
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25", "-n", ns, check=True)
    d = ("deployment", "web", "-n", ns)
    smp = '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}'
    assert cluster.kubectl("patch", *d, "-p", smp, check=True).stdout.strip() == "deployment.apps/web patched"
    names = [c["name"] for c in _json(cluster, *d)["spec"]["template"]["spec"]["containers"]]
    assert names == ["sidecar", "nginx"]  # merged by name, the patch's element first, as upstream
    assert cluster.kubectl("patch", *d, "-p", smp, check=True).stdout.strip() == \
        "deployment.apps/web patched (no change)"
    delete = '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}'
    cluster.kubectl("patch", *d, "-p", delete, check=True)
    assert [c["name"] for c in _json(cluster, *d)["spec"]["template"]["spec"]["containers"]] == ["nginx"]

    merge = '{"spec":{"minReadySeconds":5,"template":{"metadata":{"annotations":{"a":"b"}}}}}'
    assert cluster.kubectl("patch", *d, "--type", "merge", "-p", merge, check=True).stdout.strip() == \
        "deployment.apps/web patched"
    assert cluster.kubectl("patch", *d, "--type=merge", "-p", merge, check=True).stdout.strip() == \
        "deployment.apps/web patched (no change)"
    jp = '[{"op":"replace","path":"/spec/replicas","value":2},{"op":"add","path":"/metadata/labels/x","value":"y"}]'
    assert cluster.kubectl("patch", *d, "--type", "json", "-p", jp, check=True).stdout.strip() == \
        "deployment.apps/web patched"
    assert cluster.kubectl("patch", *d, "--type", "json", "-p", jp, check=True).stdout.strip() == \
        "deployment.apps/web patched (no change)"
    dep = _json(cluster, *d)
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["minReadySeconds"] == 5
    assert dep["metadata"]["labels"]["x"] == "y"

    bad = cluster.kubectl("patch", *d, "--type", "json", "-p", '[{"op":"test","path":"/spec/replicas","value":9}]')
    # NewGenericServerResponse(422) keeps its stock message and drops json-patch's reason
    assert bad.returncode == 1
    assert bad.stderr.strip() == "The request is invalid: the server rejected our request due to an error in our request"
    invalid = cluster.kubectl("patch", *d, "--type", "merge", "-p", '{"spec":{"replicas":-2}}')
    assert invalid.returncode == 1
    assert 'The Deployment "web" is invalid: spec.replicas: Invalid value: -2: must be greater than or equal to 0' \
        in invalid.stderr


# ---------------------------------------------------------------- wait


def test_wait_for_condition_jsonpath_and_delete(cluster):
    ns = _ns(cluster, "waiting")
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns, check=True)
    d = ("deploy/web", "-n", ns)
    early = cluster.kubectl("wait", "--for=condition=Available", *d, "--timeout=1s")
    assert early.returncode == 1
    assert early.stderr.strip() == "error: timed out waiting for the condition on deployments/web"

    status = {"status": {"observedGeneration": 1, "replicas": 1, "availableReplicas": 1, "readyReplicas": 1,
                         "updatedReplicas": 1, "conditions": [
                             {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                              "message": "Deployment has minimum availability.",
                              "lastUpdateTime": "2024-05-01T10:00:00Z",
                              "lastTransitionTime": "2024-05-01T10:00:00Z"}]}}

    def later() -> None:
        time.sleep(1.0)
        cluster.kubectl("patch", *d, "--subresource=status", "--type=merge", "-p", json.dumps(status), check=True)

    t = threading.Thread(target=later)
    t.start()
    r = cluster.kubectl("wait", "--for=condition=Available", *d, "--timeout=20s")
    t.join()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deployment.apps/web condition met"
    out = cluster.kubectl("get", "deploy", "-n", ns, check=True).stdout
    assert rows(out)[0][:4] == ["web", "1/1", "1", "1"]
    assert cluster.kubectl("wait", "--for=condition=Available=false", *d, "--timeout=1s").returncode == 1
    r = cluster.kubectl("wait", "--for=jsonpath={.status.readyReplicas}=1", *d, "--timeout=5s", check=True)
    assert r.stdout.strip() == "deployment.apps/web condition met"
    r = cluster.kubectl("wait", "--for=jsonpath={.spec.template.spec.containers[0].image}=nginx", *d,
                        "--timeout=5s", check=True)
    assert r.stdout.strip() == "deployment.apps/web condition met"

    cluster.kubectl("create", "configmap", "doomed", "-n", ns, check=True)

    def delete_later() -> None:
        time.sleep(1.0)
        cluster.kubectl("delete", "configmap", "doomed", "-n", ns, check=True)

    t = threading.Thread(target=delete_later)
    t.start()
    r = cluster.kubectl("wait", "--for=delete", "configmap/doomed", "-n", ns, "--timeout=20s")
    t.join()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "configmap/doomed condition met"


# ---------------------------------------------------------------- get output formats


def test_get_output_formats(cluster):
    ns = _ns(cluster, "formats")
    for name, image in (("b-pod", "nginx:1.25"), ("a-pod", "redis:7"), ("c-pod", "busybox")):
        cluster.kubectl("run", name, f"--image={image}", f"--labels=app={name},tier=t{name[0]}", "-n", ns,
                        check=True)
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns, check=True)
    cluster.kubectl("create", "service", "clusterip", "web", "--tcp=80:80", "-n", ns, check=True)
    p = ("pods", "-n", ns)

    out = cluster.kubectl("get", *p, "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image",
                          check=True).stdout
    assert out.splitlines()[0].split() == ["NAME", "IMAGE"]
    assert sorted(rows(out)) == [["a-pod", "redis:7"], ["b-pod", "nginx:1.25"], ["c-pod", "busybox"]]
    assert cluster.kubectl("get", *p, "-o", "name", check=True).stdout.split() == \
        ["pod/a-pod", "pod/b-pod", "pod/c-pod"]
    jp = cluster.kubectl("get", *p, "-o", "jsonpath={.items[*].metadata.name}", check=True).stdout
    assert jp == "a-pod b-pod c-pod"
    gt = cluster.kubectl("get", *p, "-o", 'go-template={{range .items}}{{.metadata.name}}:{{.status.phase}}'
                         '{{"\\n"}}{{end}}', check=True).stdout
    assert gt.splitlines() == ["a-pod:Pending", "b-pod:Pending", "c-pod:Pending"]
    wide = cluster.kubectl("get", *p, "-o", "wide", check=True).stdout
    assert header(wide)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert rows(wide)[0][5:] == ["<none>"] * 4

    by_image = cluster.kubectl("get", *p, "--sort-by=.spec.containers[0].image", check=True).stdout
    assert [r[0] for r in rows(by_image)] == ["c-pod", "b-pod", "a-pod"]
    by_name = cluster.kubectl("get", *p, "--sort-by=.metadata.name", check=True).stdout
    assert [r[0] for r in rows(by_name)] == ["a-pod", "b-pod", "c-pod"]
    labelled = cluster.kubectl("get", *p, "-L", "app", "-L", "tier", check=True).stdout
    assert header(labelled) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "APP", "TIER"]
    assert rows(labelled)[0][5:] == ["a-pod", "ta"]

    everything = cluster.kubectl("get", "all", "-n", ns, check=True).stdout
    sections = everything.strip().split("\n\n")
    assert [header(s)[0] for s in sections] == ["NAME"] * 3
    assert [r[0] for r in rows(sections[0])] == ["pod/a-pod", "pod/b-pod", "pod/c-pod"]
    assert rows(sections[1])[0][:2] == ["service/web", "ClusterIP"]
    assert header(sections[2]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows(sections[2])[0][:4] == ["deployment.apps/web", "0/1", "0", "0"]

    every_ns = cluster.kubectl("get", "pods", "-A", check=True).stdout
    assert header(every_ns) == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [ns, "b-pod", "0/1", "Pending", "0"] in [r[:5] for r in rows(every_ns)]
    one = cluster.kubectl("get", "pod", "b-pod", "-n", ns, check=True).stdout
    assert rows(one)[0][:3] == ["b-pod", "0/1", "Pending"]
    missing = cluster.kubectl("get", "pods", "-n", "formats-none")
    assert missing.stderr.strip() == "No resources found in formats-none namespace."


def test_api_resources_wide(cluster):
    out = cluster.kubectl("api-resources", "-o", "wide", check=True).stdout
    assert header(out) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS", "CATEGORIES"]
    table = {r[0]: r for r in rows(out) if len(r) >= 6}
    verbs = "create,delete,deletecollection,get,list,patch,update,watch"
    assert table["pods"] == ["pods", "po", "v1", "true", "Pod", verbs, "all"]
    assert table["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment", verbs, "all"]
    assert table["configmaps"][:6] == ["configmaps", "cm", "v1", "true", "ConfigMap", verbs]
    namespaced = cluster.kubectl("api-resources", "--namespaced=false", "-o", "name", check=True).stdout.split()
    assert "namespaces" in namespaced and "nodes" in namespaced and "pods" not in namespaced
    names = cluster.kubectl("api-resources", "--api-group=apps", "-o", "name", check=True).stdout.split()
    assert "deployments.apps" in names and "replicasets.apps" in names


# ---------------------------------------------------------------- dry run, delete, scale


def test_server_dry_run_for_create_apply_delete(cluster, tmp_path):
    ns = _ns(cluster, "dryrun")
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n")
    assert cluster.kubectl("create", "-f", str(cm), "-n", ns, "--dry-run=server", check=True).stdout.strip() == \
        "configmap/settings created (server dry run)"
    assert cluster.kubectl("apply", "-f", str(cm), "-n", ns, "--dry-run=server", check=True).stdout.strip() == \
        "configmap/settings created (server dry run)"
    assert cluster.kubectl("get", "cm", "settings", "-n", ns).returncode == 1
    cluster.kubectl("apply", "-f", str(cm), "-n", ns, check=True)
    cm.write_text(cm.read_text().replace("a: b", "a: c"))
    assert cluster.kubectl("apply", "-f", str(cm), "-n", ns, "--dry-run=server", check=True).stdout.strip() == \
        "configmap/settings configured (server dry run)"
    assert _json(cluster, "cm", "settings", "-n", ns)["data"] == {"a": "b"}
    r = cluster.kubectl("delete", "cm", "settings", "-n", ns, "--dry-run=server", check=True)
    assert r.stdout.strip() == 'configmap "settings" deleted (server dry run)'
    assert _json(cluster, "cm", "settings", "-n", ns)["data"] == {"a": "b"}
    dry = cluster.kubectl("create", "deployment", "x", "--image=nginx", "-n", ns, "--dry-run=server", check=True)
    assert dry.stdout.strip() == "deployment.apps/x created (server dry run)"
    assert cluster.kubectl("get", "deploy", "x", "-n", ns).returncode == 1


@pytest.mark.parametrize("cascade,finalizer", [("foreground", "foregroundDeletion"), ("orphan", "orphan")])
def test_delete_cascade_records_the_finalizer(cluster, cascade, finalizer):
    ns = _ns(cluster, f"cascade-{cascade}")
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns, check=True)
    r = cluster.kubectl("delete", "deployment", "web", "-n", ns, f"--cascade={cascade}", "--wait=false",
                        check=True)
    assert r.stdout.strip() == 'deployment.apps "web" deleted'
    meta = _json(cluster, "deploy", "web", "-n", ns)["metadata"]
    assert meta["finalizers"] == [finalizer] and meta["deletionTimestamp"]
    assert meta["deletionGracePeriodSeconds"] == 0


def test_scale_and_rollout_history(cluster):
    ns = _ns(cluster, "scaling")
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns, check=True)
    r = cluster.kubectl("scale", "deployment", "web", "--replicas=3", "-n", ns, check=True)
    assert r.stdout.strip() == "deployment.apps/web scaled"
    out = cluster.kubectl("get", "deployments", "-n", ns, check=True).stdout
    assert rows(out)[0][:4] == ["web", "0/3", "0", "0"]
    wrong = cluster.kubectl("scale", "deployment", "web", "--replicas=5", "--current-replicas=2", "-n", ns)
    assert wrong.returncode == 1 and "Expected replicas to be 2, was 3" in wrong.stderr
    history = cluster.kubectl("rollout", "history", "deployment", "web", "-n", ns, check=True).stdout
    assert history.splitlines() == ["deployment.apps/web ", "No rollout history found."]


# ---------------------------------------------------------------- events, explain


def test_get_events_sorted_by_last_timestamp(cluster):
    ns = _ns(cluster, "eventful")
    cluster.kubectl("create", "configmap", "subject", "-n", ns, check=True)
    cm = _json(cluster, "cm", "subject", "-n", ns)
    _event(cluster, ns, "e-late", "ConfigMap", "v1", cm, "Late", "third", last="2024-05-01T12:00:00Z")
    _event(cluster, ns, "e-early", "ConfigMap", "v1", cm, "Early", "first", last="2024-05-01T10:00:00Z")
    _event(cluster, ns, "e-mid", "ConfigMap", "v1", cm, "Middle", "second", last="2024-05-01T11:00:00Z",
           etype="Warning")
    out = cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=True).stdout
    assert header(out) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [r[1:] for r in rows(out)] == [["Normal", "Early", "configmap/subject", "first"],
                                         ["Warning", "Middle", "configmap/subject", "second"],
                                         ["Normal", "Late", "configmap/subject", "third"]]
    assert all(re.fullmatch(r"\d+d|\d+y\d+d|\d+y", r[0]) for r in rows(out))
    warnings = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "type=Warning", check=True).stdout
    assert [r[2] for r in rows(warnings)] == ["Middle"]


def test_explain(cluster):
    out = cluster.kubectl("explain", "pods.spec.containers", check=True).stdout
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n")
    assert "List of containers belonging to the pod." in out
    assert re.search(r"^  image\t<string>$", out, re.M)
    assert re.search(r"^  name\t<string> -required-$", out, re.M)
    out = cluster.kubectl("explain", "deployment.spec.replicas", check=True).stdout
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: replicas <integer>")
    out = cluster.kubectl("explain", "svc.spec", "--recursive", check=True).stdout
    assert re.search(r"^    nodePort\t<integer>$", out, re.M) and re.search(r"^  externalIPs\t<\[\]string>$", out, re.M)
    missing = cluster.kubectl("explain", "pods.spec.nonsense")
    assert missing.returncode == 1 and 'field "nonsense" does not exist' in missing.stderr


# ---------------------------------------------------------------- every kind, applied twice

_EXPECT_CONFIGURED = {
    # spec.selector has patchStrategy "replace", so kubectl's three-way patch is never empty: upstream
    # prints "configured" on every apply of a PodDisruptionBudget
    "policy-poddisruptionbudget.yaml",
    # volumeClaimTemplates is an atomic list and the server defaults volumeMode and status.phase in it, so the
    # live list never equals the file's: upstream prints "configured" on every apply of such a StatefulSet
    "apps-statefulset.yaml",
    # stringData is folded into data and never stored, so the live object never holds the file's stringData:
    # upstream prints "configured" on every apply of a Secret written with stringData
    "core-secret.yaml",
}


def test_apply_every_fixture_twice(cluster):
    ns = _ns(cluster, "fixtures")
    files = sorted(FIXTURES.glob("*.yaml"))
    assert len(files) >= 34
    results = {}
    for f in files:
        first = cluster.kubectl("apply", "-f", str(f), "-n", ns)
        second = cluster.kubectl("apply", "-f", str(f), "-n", ns)
        results[f.name] = (first.stdout.strip() or first.stderr.strip(), second.stdout.strip() or second.stderr.strip())
    bad = {}
    for name, (first, second) in results.items():
        want = "configured" if name in _EXPECT_CONFIGURED else "unchanged"
        if not (re.fullmatch(r"\S+/\S+ created", first) and second == first.replace("created", want)):
            bad[name] = (first, second)
    assert not bad, bad
    kinds = {json.loads(cluster.kubectl("apply", "-f", str(f), "-n", ns, "--dry-run=client", "-o", "json",
                                        check=True).stdout)["kind"] for f in files[:3]}
    assert kinds
