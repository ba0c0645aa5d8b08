import re
import sys
from pathlib import Path

import pytest

from kubelite.api import discovery
from kubelite.api.resources import BUILTIN, Registry, ResourceType, Subresource

sys.path.insert(0, str(Path(__file__).parent))
from discovery_server import KUBECTL, DiscoveryServer, run_kubectl  # noqa: E402

KUBECTL_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def _crontab() -> ResourceType:
    return ResourceType("stable.example.com", "v1", "crontabs", "CronTab", True, "/registry/stable.example.com/crontabs/",
                        short_names=("ct",), categories=("all",), subresources=(Subresource("status", ""),),
                        schema_name="com.example.stable.v1.CronTab")


def test_storage_version_hash_matches_upstream():
    # Values a real 1.33 kube-apiserver publishes.
    assert discovery.storage_version_hash("", "v1", "Pod") == "xPOwRZ+Yhw8="
    assert discovery.storage_version_hash("apps", "v1", "Deployment") == "8aSe+NMegvE="


def test_core_resource_list_is_sorted_with_subresource_entries():
    doc = discovery.api_resource_list(Registry(), "", "v1")
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "v1"
    names = [r["name"] for r in doc["resources"]]
    assert names == sorted(names)
    by_name = {r["name"]: r for r in doc["resources"]}
    pods = by_name["pods"]
    assert pods == {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                    "shortNames": ["po"], "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8="}
    assert by_name["pods/log"] == {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                   "verbs": ["get"]}
    assert by_name["pods/eviction"]["group"] == "policy" and by_name["pods/eviction"]["kind"] == "Eviction"
    assert by_name["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    assert by_name["namespaces/finalize"]["kind"] == "Namespace"
    assert by_name["nodes"]["namespaced"] is False
    assert "group" not in by_name["pods/status"]


def test_apps_resource_list_scale_subresource():
    doc = discovery.api_resource_list(Registry(), "apps", "v1")
    scale = next(r for r in doc["resources"] if r["name"] == "deployments/scale")
    assert scale["group"] == "autoscaling" and scale["version"] == "v1" and scale["kind"] == "Scale"
    assert scale["verbs"] == ["get", "patch", "update"]
    assert discovery.api_resource_list(Registry(), "apps", "v2") is None
    assert discovery.api_resource_list(Registry(), "nope", "v1") is None


def test_group_list_and_group():
    reg = Registry()
    groups = discovery.api_group_list(reg)
    assert groups["kind"] == "APIGroupList"
    names = [g["name"] for g in groups["groups"]]
    assert names == [g for g, _ in reg.groups()]
    apps = discovery.api_group(reg, "apps")
    assert apps == {"kind": "APIGroup", "apiVersion": "v1", "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
    assert discovery.api_group(reg, "") is None
    assert discovery.api_group(reg, "nope") is None


def test_preferred_version_follows_kube_version_priority():
    reg = Registry(BUILTIN + (
        ResourceType("batch", "v2alpha1", "jobs", "Job", True, "/registry/jobs/"),
        ResourceType("batch", "v1beta1", "jobs", "Job", True, "/registry/jobs/"),
    ))
    batch = discovery.api_group(reg, "batch")
    assert [v["version"] for v in batch["versions"]] == ["v1", "v1beta1", "v2alpha1"]
    assert batch["preferredVersion"]["version"] == "v1"


def test_api_versions():
    doc = discovery.api_versions("10.0.0.1:6443")
    assert doc == {"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]}


def test_aggregated_core_and_groups():
    reg = Registry()
    core = discovery.aggregated_discovery(reg, core=True)
    assert core["kind"] == "APIGroupDiscoveryList" and core["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert len(core["items"]) == 1 and "name" not in core["items"][0]["metadata"]
    (v1,) = core["items"][0]["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert pods["responseKind"] == {"group": "", "version": "", "kind": "Pod"}
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["status"]["verbs"] == ["get", "patch", "update"]
    nodes = next(r for r in v1["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"

    named = discovery.aggregated_discovery(reg, core=False)
    assert [i["metadata"]["name"] for i in named["items"]] == [g for g, _ in reg.groups()]
    apps = named["items"][0]
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}

    beta = discovery.aggregated_discovery(reg, core=False, api_version="apidiscovery.k8s.io/v2beta1")
    assert beta["apiVersion"] == "apidiscovery.k8s.io/v2beta1" and beta["items"] == named["items"]


@pytest.mark.parametrize("accept, expected", [
    (KUBECTL_ACCEPT, discovery.AGGREGATED_V2),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
     discovery.AGGREGATED_V2BETA1),
    ("application/json, */*", None),
    ("application/json", None),
    ("", None),
    (None, None),
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json", None),
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None),
    ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
    ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", discovery.AGGREGATED_V2),
])
def test_wants_aggregated(accept, expected):
    assert discovery.wants_aggregated(accept) == expected


def test_aggregated_api_version_from_content_type():
    assert discovery.aggregated_api_version(discovery.AGGREGATED_V2) == "apidiscovery.k8s.io/v2"
    assert discovery.aggregated_api_version(discovery.AGGREGATED_V2BETA1) == "apidiscovery.k8s.io/v2beta1"


def test_version_info():
    info = discovery.version_info()
    assert list(info) == ["major", "minor", "emulationMajor", "emulationMinor", "minCompatibilityMajor",
                          "minCompatibilityMinor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
                          "goVersion", "compiler", "platform"]
    assert (info["major"], info["minor"], info["emulationMinor"], info["minCompatibilityMinor"]) == ("1", "33", "33", "32")
    assert re.fullmatch(r"v1\.33\.\d+", info["gitVersion"])
    assert info["compiler"] == "gc" and info["platform"].startswith("linux/")
    assert discovery.version_info("28")["gitVersion"].startswith("v1.28.")


def test_discovery_hash_tracks_registry_changes():
    reg = Registry()
    before = discovery.discovery_hash(reg)
    assert before == discovery.discovery_hash(Registry())
    crd = _crontab()
    reg.add(crd)
    after = discovery.discovery_hash(reg)
    assert after != before
    assert "stable.example.com" in [g["name"] for g in discovery.api_group_list(reg)["groups"]]
    assert discovery.api_resource_list(reg, "stable.example.com", "v1")["resources"][0]["shortNames"] == ["ct"]
    reg.remove(crd)
    assert discovery.discovery_hash(reg) == before


# --- the real kubectl ---------------------------------------------------------------------------

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


@pytest.fixture(params=["aggregated", "legacy"])
def server(request):
    srv = DiscoveryServer(aggregated=request.param == "aggregated").start()
    yield srv
    srv.stop()


def _expected_rows(reg: Registry) -> list[tuple[str, str, str, str, str]]:
    # a resource served in several versions is listed once, in its group's preferred version
    preferred: dict[tuple[str, str], ResourceType] = {}
    for rt in reg:
        seen = preferred.get((rt.group, rt.resource))
        if seen is None or discovery.version_priority(rt.version) < discovery.version_priority(seen.version):
            preferred[(rt.group, rt.resource)] = rt
    rows = [(rt.resource, ",".join(rt.short_names), rt.api_version, str(rt.namespaced).lower(), rt.kind)
            for rt in preferred.values()]
    # kubectl sorts by group, then by resource name.
    return sorted(rows, key=lambda r: (r[2].rpartition("/")[0], r[0]))


@needs_kubectl
def test_kubectl_api_resources_and_versions(server, tmp_path):
    res = run_kubectl(server, str(tmp_path), "api-resources")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    starts = [lines[0].index(h) for h in ("SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND")]
    rows = []
    for line in lines[1:]:
        cells = [line[: starts[0]], line[starts[0]: starts[1]], line[starts[1]: starts[2]],
                 line[starts[2]: starts[3]], line[starts[3]:]]
        rows.append(tuple(c.strip() for c in cells))
    assert rows == _expected_rows(server.registry)

    res = run_kubectl(server, str(tmp_path), "api-versions")
    assert res.returncode == 0, res.stderr
    expected = sorted({rt.api_version for rt in server.registry})
    assert res.stdout.split() == expected

    gets = [r.path for r in server.requests if r.method == "GET" and r.path != "/version"]
    per_gv = [p for p in gets if p.startswith(("/api/", "/apis/"))]
    if server.aggregated:
        assert per_gv == []
        assert all(r.accept == KUBECTL_ACCEPT for r in server.requests if r.path in ("/api", "/apis"))
    else:
        # Legacy discovery fetches every group-version (api-resources invalidates the cache first).
        assert set(per_gv) == {rt.path().rsplit("/", 1)[0] for rt in server.registry}


@needs_kubectl
def test_kubectl_resolves_short_names(server, tmp_path):
    res = run_kubectl(server, str(tmp_path), "explain", "deploy", "--recursive=false")
    assert res.returncode == 0, res.stderr
    assert "KIND:       Deployment" in res.stdout
