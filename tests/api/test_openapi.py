import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubelite.api import openapi
from kubelite.api.resources import Registry, ResourceType, Subresource

sys.path.insert(0, str(Path(__file__).parent))
from discovery_server import KUBECTL, DiscoveryServer, run_kubectl  # noqa: E402

META = "io.k8s.apimachinery.pkg.apis.meta.v1."


def _walk(node: Any):
    """Every schema-like dict; property-name maps are walked into but not yielded (a property may be
    called "$ref", as JSONSchemaProps' is)."""
    if isinstance(node, dict):
        yield node
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                for prop in v.values():
                    yield from _walk(prop)
            else:
                yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _subschemas(schema: dict):
    """The schema and every schema nested in it (not property-name maps)."""
    yield schema
    for sub in (schema.get("properties") or {}).values():
        yield from _subschemas(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _subschemas(schema[key])
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, ()):
            yield from _subschemas(sub)


def _doc(group: str, version: str, reg: Registry | None = None) -> dict:
    raw = openapi.openapi_v3_document(reg or Registry(), group, version)
    assert raw is not None
    return orjson.loads(raw)


def _crontab() -> ResourceType:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "cronSpec": {"type": "string", "description": "when to run"}, "replicas": {"type": "integer"}}}}}
    return ResourceType("stable.example.com", "v1", "crontabs", "CronTab", True,
                        "/registry/stable.example.com/crontabs/", short_names=("ct",),
                        subresources=(Subresource("status", ""),), schema_name="com.example.stable.v1.CronTab",
                        extra={"openapi_schema": schema})


@pytest.fixture(scope="module")
def core() -> dict:
    return _doc("", "v1")


@pytest.fixture(scope="module")
def apps() -> dict:
    return _doc("apps", "v1")


def test_document_shape(core):
    assert core["openapi"] == "3.0.0"
    assert core["info"]["title"] == "Kubernetes" and core["info"]["version"].startswith("v1.33.")
    assert "/api/v1/" in core["paths"]


def test_every_ref_resolves_and_schemas_are_openapi3(core, apps):
    for doc in (core, apps):
        schemas = doc["components"]["schemas"]
        for node in _walk(doc):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/components/schemas/"), ref
                assert ref.removeprefix("#/components/schemas/") in schemas, ref
                assert set(node) == {"$ref"}, node  # siblings go next to an allOf instead
        for name, schema in schemas.items():
            for node in _subschemas(schema):
                t = node.get("type")
                assert t is None or isinstance(t, str), (name, node)
        assert b"$defs" not in orjson.dumps(doc)


def test_item_patch_operation_is_what_kubectl_looks_for(core, apps):
    pod_item = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    patch = pod_item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Pod", "version": "v1"}
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["operationId"] == "patchCoreV1NamespacedPod"
    names = [p["name"] for p in patch["parameters"]]
    assert names == ["dryRun", "fieldManager", "fieldValidation", "force"]
    assert all(p["in"] == "query" for p in patch["parameters"])
    assert sorted(patch["requestBody"]["content"]) == sorted(openapi.PATCH_TYPES)
    assert patch["requestBody"]["content"]["application/merge-patch+json"]["schema"] == {
        "$ref": "#/components/schemas/" + META + "Patch"}
    assert [p["name"] for p in pod_item["parameters"]] == ["name", "namespace", "pretty"]
    assert set(pod_item) == {"parameters", "get", "put", "patch", "delete"}

    deploy_item = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert deploy_item["patch"]["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment",
                                                                       "version": "v1"}


def test_collection_and_list_paths(core, apps):
    coll = core["paths"]["/api/v1/namespaces/{namespace}/pods"]
    assert set(coll) == {"parameters", "get", "post", "delete"}
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert coll["post"]["x-kubernetes-action"] == "post"
    assert [p["name"] for p in coll["post"]["parameters"]] == ["dryRun", "fieldManager", "fieldValidation"]
    list_params = [p["name"] for p in coll["get"]["parameters"]]
    for name in ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch",
                 "timeoutSeconds", "allowWatchBookmarks"):
        assert name in list_params
    list_ref = coll["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert list_ref.endswith("io.k8s.api.core.v1.PodList")
    all_ns = core["paths"]["/api/v1/pods"]
    assert all_ns["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert "/api/v1/watch/namespaces/{namespace}/pods/{name}" in core["paths"]
    assert core["paths"]["/api/v1/watch/pods"]["get"]["x-kubernetes-action"] == "watchlist"
    # cluster-scoped: no namespace segment, no all-namespaces list
    assert "/api/v1/nodes/{name}" in core["paths"] and "/api/v1/namespaces/{namespace}/nodes" not in core["paths"]
    # namespaces has no deletecollection upstream
    assert "delete" not in core["paths"]["/api/v1/namespaces"]
    assert apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"]["operationId"] == \
        "listAppsV1NamespacedDeployment"


def test_subresource_paths(core, apps):
    status = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert set(status) == {"parameters", "get", "put", "patch"}
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert status["get"]["operationId"] == "readAppsV1NamespacedDeploymentStatus"
    scale = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale",
                                                                  "version": "v1"}
    assert scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "io.k8s.api.autoscaling.v1.Scale")
    assert "io.k8s.api.autoscaling.v1.Scale" in apps["components"]["schemas"]
    exec_ = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert exec_["get"]["x-kubernetes-action"] == "connect" and "post" in exec_
    evict = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]
    assert evict["post"]["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction",
                                                                "version": "v1"}
    log = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]
    assert "text/plain" in log["get"]["responses"]["200"]["content"]


def test_component_schemas_look_like_upstream(core, apps):
    schemas = core["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["type"] == "object"
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["kind"] == {"description": pod["properties"]["kind"]["description"], "type": "string"}
    assert pod["properties"]["metadata"]["allOf"] == [{"$ref": "#/components/schemas/" + META + "ObjectMeta"}]
    assert pod["properties"]["metadata"]["default"] == {}
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}],
                                   "default": {}}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map" and containers["x-kubernetes-list-map-keys"] == ["name"]
    assert "containers" in schemas["io.k8s.api.core.v1.PodSpec"]["required"]
    command = schemas["io.k8s.api.core.v1.Container"]["properties"]["command"]
    assert command["items"] == {"default": "", "type": "string"}
    labels = schemas[META + "ObjectMeta"]["properties"]["labels"]
    assert labels["type"] == "object" and labels["additionalProperties"] == {"default": "", "type": "string"}
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and ios["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schemas[META + "Time"] == {"description": schemas[META + "Time"]["description"],
                                      "format": "date-time", "type": "string"}
    strategy = apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"][0]["$ref"].endswith("DeploymentStrategy")
    # only what the group-version reaches
    assert "io.k8s.api.apps.v1.Deployment" not in schemas
    assert "io.k8s.api.core.v1.PodSpec" in apps["components"]["schemas"]


def test_index_lists_documents_with_content_hashes():
    reg = Registry()
    index = openapi.openapi_v3_index(reg)["paths"]
    for key in ("api", "apis", "version", "api/v1", "apis/apps", "apis/apps/v1", "apis/batch/v1"):
        assert key in index, key
    url = index["apis/apps/v1"]["serverRelativeURL"]
    path, _, query = url.partition("?hash=")
    assert path == "/openapi/v3/apis/apps/v1"
    raw = openapi.openapi_v3_path(reg, "apis/apps/v1")
    assert query == hashlib.sha512(raw).hexdigest().upper()
    assert openapi.openapi_v3_index(Registry()) == openapi.openapi_v3_index(reg)
    for key in index:
        assert orjson.loads(openapi.openapi_v3_path(reg, key))["openapi"] == "3.0.0"
    version_doc = orjson.loads(openapi.openapi_v3_path(reg, "version"))
    assert "/version/" in version_doc["paths"]
    assert openapi.openapi_v3_path(reg, "apis/nope/v1") is None
    assert openapi.openapi_v3_document(reg, "apps", "v9") is None


def test_custom_type_changes_hash_and_has_no_strategic_merge():
    reg = Registry()
    before = openapi.openapi_v3_index(reg)["paths"]
    reg.add(_crontab())
    after = openapi.openapi_v3_index(reg)["paths"]
    assert "apis/stable.example.com/v1" in after and "apis/stable.example.com/v1" not in before
    assert after["apis/apps/v1"] == before["apis/apps/v1"]
    doc = _doc("stable.example.com", "v1", reg)
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]
    crontab = doc["components"]["schemas"]["com.example.stable.v1.CronTab"]
    assert crontab["x-kubernetes-group-version-kind"] == [{"group": "stable.example.com", "kind": "CronTab",
                                                           "version": "v1"}]
    assert META + "ObjectMeta" in doc["components"]["schemas"]
    # a changed schema is a changed document
    reg.remove(reg.get("stable.example.com", "v1", "crontabs"))
    changed = _crontab()
    changed.extra["openapi_schema"]["properties"]["spec"]["properties"]["image"] = {"type": "string"}
    reg.add(changed)
    assert openapi.openapi_v3_index(reg)["paths"]["apis/stable.example.com/v1"] != after["apis/stable.example.com/v1"]


def test_v2_document():
    doc = orjson.loads(openapi.openapi_v2(Registry()))
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    for node in _walk(doc):
        ref = node.get("$ref")
        if ref is not None:
            assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in defs, ref
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert "io.k8s.api.apps.v1.Deployment" in defs and "io.k8s.api.core.v1.Pod" in defs
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["parameters"][0]["in"] == "body"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert defs["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"]["$ref"] == \
        "#/definitions/" + META + "ObjectMeta"


def test_documents_are_cheap_to_recompute():
    reg = Registry()
    openapi.openapi_v3_index(reg)
    start = time.perf_counter()
    for _ in range(20):
        openapi.openapi_v3_index(reg)
        openapi.openapi_v3_document(reg, "", "v1")
    assert (time.perf_counter() - start) / 20 < 0.05


# --- the real kubectl ---------------------------------------------------------------------------

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

POD = """apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: nginx:1.25
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: %s
"""


@pytest.fixture(scope="module", params=["aggregated", "legacy"])
def server(request):
    srv = DiscoveryServer(aggregated=request.param == "aggregated").start()
    yield srv
    srv.stop()


@needs_kubectl
def test_kubectl_explain_pods(server, tmp_path):
    res = run_kubectl(server, str(tmp_path), "explain", "pods")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n    Pod is a collection of containers")
    assert "\nFIELDS:\n  apiVersion\t<string>\n" in out
    assert "\n  spec\t<PodSpec>\n    Specification of the desired behavior of the pod." in out
    assert "\n  metadata\t<ObjectMeta>\n" in out


@needs_kubectl
def test_kubectl_explain_nested_field(server, tmp_path):
    res = run_kubectl(server, str(tmp_path), "explain", "pods.spec.containers")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n")
    assert "\nDESCRIPTION:\n    List of containers belonging to the pod." in out
    assert "\n  name\t<string> -required-\n" in out
    assert "\n  ports\t<[]ContainerPort>\n" in out
    assert "\n  resources\t<ResourceRequirements>\n" in out


@needs_kubectl
def test_kubectl_explain_recursive(server, tmp_path):
    res = run_kubectl(server, str(tmp_path), "explain", "deployment.spec", "--recursive")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: spec <DeploymentSpec>\n")
    for line in ("  replicas\t<integer>", "  selector\t<LabelSelector> -required-",
                 "  strategy\t<DeploymentStrategy>", "      maxSurge\t<IntOrString>",
                 "  template\t<PodTemplateSpec> -required-", "      containers\t<[]Container> -required-",
                 "          containerPort\t<integer> -required-", "      creationTimestamp\t<string>"):
        assert "\n" + line + "\n" in out, line
    gv_docs = [r.path for r in server.requests if r.path.startswith("/openapi/v3/")]
    assert "/openapi/v3/apis/apps/v1" in gv_docs
    assert not any(r.path == "/openapi/v2" for r in server.requests)


@needs_kubectl
def test_kubectl_create_sends_strict_field_validation(server, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD)
    server.requests.clear()
    res = run_kubectl(server, str(tmp_path), "create", "-f", str(tmp_path / "pod.yaml"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "pod/nginx created"
    (post,) = [r for r in server.requests if r.method == "POST"]
    assert post.path == "/api/v1/namespaces/default/pods"
    assert post.query == "fieldManager=kubectl-create&fieldValidation=Strict"
    assert orjson.loads(post.body)["metadata"]["name"] == "nginx"
    # The decision came from our v3 document, with no fallback to v2.
    paths = [r.path for r in server.requests]
    assert "/openapi/v3/api/v1" in paths and "/openapi/v2" not in paths


@needs_kubectl
def test_kubectl_apply_computes_patch_from_our_schema(server, tmp_path):
    (tmp_path / "d1.yaml").write_text(DEPLOYMENT % "nginx:1.25")
    (tmp_path / "d2.yaml").write_text(DEPLOYMENT % "nginx:1.27")
    res = run_kubectl(server, str(tmp_path), "apply", "-f", str(tmp_path / "d1.yaml"))
    assert res.returncode == 0, res.stderr
    server.requests.clear()
    res = run_kubectl(server, str(tmp_path), "apply", "-f", str(tmp_path / "d2.yaml"))
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr.lower(), res.stderr
    assert res.stdout.strip() == "deployment.apps/web configured"
    (patch,) = [r for r in server.requests if r.method == "PATCH"]
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.query == "fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
    body = orjson.loads(patch.body)
    spec = body["spec"]["template"]["spec"]
    assert spec["$setElementOrder/containers"] == [{"name": "web"}]
    assert spec["containers"] == [{"image": "nginx:1.27", "name": "web"}]
