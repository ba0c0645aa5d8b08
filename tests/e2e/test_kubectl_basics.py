"""kubectl's discovery-driven commands, protobuf-bodied creates, watch and delete against kubelite."""

from __future__ import annotations

import json
import re
import subprocess
import time

from kubectl_output import header, rows


def test_version_reports_v1_33(cluster):
    out = json.loads(cluster.kubectl("version", "-o", "json", check=True).stdout)
    assert out["serverVersion"]["major"] == "1" and out["serverVersion"]["minor"] == "33"
    assert out["serverVersion"]["gitVersion"].startswith("v1.33.")


def test_api_versions_and_resources(cluster):
    versions = cluster.kubectl("api-versions", check=True).stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
               "coordination.k8s.io/v1", "discovery.k8s.io/v1", "storage.k8s.io/v1", "events.k8s.io/v1",
               "policy/v1", "scheduling.k8s.io/v1"):
        assert gv in versions
    out = cluster.kubectl("api-resources", check=True).stdout
    assert header(out) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    table = {r[0]: r for r in rows(out)}
    assert table["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert table["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert table["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]


def test_protobuf_creates(cluster):
    ns = "pb-create"
    assert cluster.kubectl("create", "namespace", ns, check=True).stdout.strip() == f"namespace/{ns} created"
    r = cluster.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=a=b", "--from-literal=c=d",
                        check=True)
    assert r.stdout.strip() == "configmap/cfg created"
    cm = json.loads(cluster.kubectl("get", "cm", "cfg", "-n", ns, "-o", "json", check=True).stdout)
    assert cm["data"] == {"a": "b", "c": "d"}
    assert cluster.kubectl("create", "serviceaccount", "robot", "-n", ns, check=True).stdout.strip() == \
        "serviceaccount/robot created"
    sa = json.loads(cluster.kubectl("get", "sa", "robot", "-n", ns, "-o", "json", check=True).stdout)
    assert sa["metadata"]["name"] == "robot" and sa["metadata"]["namespace"] == ns
    r = cluster.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=2", check=True)
    assert r.stdout.strip() == "deployment.apps/web created"
    dep = json.loads(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "json", check=True).stdout)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_get_watch_receives_an_event(cluster):
    ns = "watching"
    cluster.kubectl("create", "namespace", ns, check=True)
    cluster.kubectl("create", "configmap", "first", "-n", ns, check=True)
    proc = subprocess.Popen(
        ["/usr/bin/kubectl", "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir,
         "get", "configmaps", "-n", ns, "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        cluster.kubectl("create", "configmap", "second", "-n", ns, check=True)
        time.sleep(1.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    names = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert "first" in names and "second" in names, (out, err)


def test_delete_configmap_and_namespace_protection(cluster):
    cluster.kubectl("create", "configmap", "doomed", check=True)
    assert cluster.kubectl("delete", "configmap", "doomed", check=True).stdout.strip() == \
        'configmap "doomed" deleted'
    r = cluster.kubectl("delete", "namespace", "default")
    assert r.returncode == 1
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in r.stderr


def test_strict_validation_rejects_unknown_fields(cluster, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-cm\nunknownField: 1\n")
    r = cluster.kubectl("create", "-f", str(path))
    assert r.returncode == 1
    assert (f'Error from server (BadRequest): error when creating "{path}": ConfigMap in version "v1" cannot be '
            'handled as a ConfigMap: strict decoding error: unknown field "unknownField"') in r.stderr


def test_services_get_cluster_ips_and_node_ports(cluster):
    r = cluster.kubectl("create", "service", "nodeport", "np", "--tcp=80:80", check=True)
    assert r.stdout.strip() == "service/np created"
    out = cluster.kubectl("get", "svc", check=True).stdout
    assert header(out) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    table = {r[0]: r for r in rows(out)}
    assert table["kubernetes"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    np = table["np"]
    assert np[1] == "NodePort" and re.fullmatch(r"10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+", np[2])
    assert re.fullmatch(r"80:3\d{4}/TCP", np[4])
    cluster.kubectl("delete", "svc", "np", check=True)


PROTOBUF_CREATES = [
    (["secret", "generic", "pb-secret", "--from-literal=k=v"], "secret/pb-secret created", ["secret", "pb-secret"]),
    (["service", "clusterip", "pb-svc", "--tcp=80:8080"], "service/pb-svc created", ["svc", "pb-svc"]),
    (["job", "pb-job", "--image=busybox"], "job.batch/pb-job created", ["job", "pb-job"]),
    (["cronjob", "pb-cron", "--image=busybox", "--schedule=*/5 * * * *"], "cronjob.batch/pb-cron created",
     ["cronjob", "pb-cron"]),
    (["role", "pb-role", "--verb=get", "--resource=pods"], "role.rbac.authorization.k8s.io/pb-role created",
     ["role", "pb-role"]),
    (["rolebinding", "pb-rb", "--role=pb-role", "--user=alice"],
     "rolebinding.rbac.authorization.k8s.io/pb-rb created", ["rolebinding", "pb-rb"]),
    (["quota", "pb-quota", "--hard=pods=10"], "resourcequota/pb-quota created", ["quota", "pb-quota"]),
    (["pdb", "pb-pdb", "--selector=app=x", "--min-available=1"], "poddisruptionbudget.policy/pb-pdb created",
     ["pdb", "pb-pdb"]),
    (["ingress", "pb-ing", "--rule=foo.com/bar=svc1:8080"], "ingress.networking.k8s.io/pb-ing created",
     ["ingress", "pb-ing"]),
]


def test_protobuf_creates_of_more_kinds(cluster):
    ns = "pb-kinds"
    cluster.kubectl("create", "namespace", ns, check=True)
    for args, printed, get in PROTOBUF_CREATES:
        r = cluster.kubectl("create", *args, "-n", ns)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.strip() == printed
        obj = json.loads(cluster.kubectl("get", *get, "-n", ns, "-o", "json", check=True).stdout)
        assert obj["metadata"]["name"] == get[1] and obj["metadata"]["namespace"] == ns
    job = json.loads(cluster.kubectl("get", "job", "pb-job", "-n", ns, "-o", "json", check=True).stdout)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    svc = json.loads(cluster.kubectl("get", "svc", "pb-svc", "-n", ns, "-o", "json", check=True).stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    for args, printed in ((["clusterrole", "pb-cr", "--verb=list", "--resource=nodes"],
                           "clusterrole.rbac.authorization.k8s.io/pb-cr created"),
                          (["clusterrolebinding", "pb-crb", "--clusterrole=pb-cr", "--user=bob"],
                           "clusterrolebinding.rbac.authorization.k8s.io/pb-crb created"),
                          (["priorityclass", "pb-pc", "--value=1000"],
                           "priorityclass.scheduling.k8s.io/pb-pc created")):
        r = cluster.kubectl("create", *args)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.strip() == printed
