"""Validation and field checks against upstream's v1.33 messages."""

from __future__ import annotations

import copy

import pytest

from kubelite.api import defaults, validation
from kubelite.api.errors import ApiError
from kubelite.api.resources import BUILTIN

RT = {(r.group, r.kind): r for r in BUILTIN if not (r.group == "events.k8s.io")}
POD, DEPLOY, SVC = RT[("", "Pod")], RT[("apps", "Deployment")], RT[("", "Service")]

NGINX_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"name": "nginx"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}]}]},
}


def pod(**spec_changes):
    obj = copy.deepcopy(NGINX_POD)
    obj["spec"].update(spec_changes)
    defaults.apply_defaults(POD, obj)
    return obj


def deployment(selector=None, labels=None):
    obj = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": selector or {"app": "web"}},
                 "template": {"metadata": {"labels": labels or {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    }
    defaults.apply_defaults(DEPLOY, obj)
    return obj


def invalid_of(rt, obj, old=None) -> ApiError:
    with pytest.raises(ApiError) as info:
        validation.validate(rt, obj, old)
    assert info.value.code == 422 and info.value.reason == "Invalid"
    return info.value


def causes(err: ApiError) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in err.details["causes"]]


# --- check_fields ----------------------------------------------------------------------------------------

def test_known_fields_pass_untouched():
    obj = copy.deepcopy(NGINX_POD)
    assert validation.check_fields(POD, obj, "Strict") == []
    assert obj == NGINX_POD


def test_strict_unknown_field_is_400_with_upstream_text():
    obj = copy.deepcopy(NGINX_POD)
    obj["spec"]["foo"] = 1
    with pytest.raises(ApiError) as info:
        validation.check_fields(POD, obj, "Strict")
    assert info.value.code == 400 and info.value.reason == "BadRequest"
    assert info.value.message == ('Pod in version "v1" cannot be handled as a Pod: '
                                  'strict decoding error: unknown field "spec.foo"')


def test_strict_several_unknown_fields_joined_with_indices():
    obj = copy.deepcopy(NGINX_POD)
    obj["metadata"]["app"] = "x"
    obj["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(ApiError) as info:
        validation.check_fields(POD, obj, "Strict")
    assert info.value.message.endswith(
        'strict decoding error: unknown field "metadata.app", '
        'unknown field "spec.containers[0].imagePullPolice"')


def test_warn_is_default_returns_warnings_and_drops_fields():
    obj = copy.deepcopy(NGINX_POD)
    obj["spec"]["foo"] = {"a": 1}
    assert validation.check_fields(POD, obj, None) == ['unknown field "spec.foo"']
    assert "foo" not in obj["spec"]
    assert obj["spec"]["containers"] == NGINX_POD["spec"]["containers"]


def test_ignore_drops_silently():
    obj = copy.deepcopy(NGINX_POD)
    obj["bogus"] = True
    assert validation.check_fields(POD, obj, "Ignore") == []
    assert "bogus" not in obj


def test_duplicates_are_strict_errors():
    raw = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}'
    dups = validation.find_duplicate_fields(raw)
    assert dups == ["metadata.name"]
    with pytest.raises(ApiError) as info:
        validation.check_fields(RT[("", "ConfigMap")], {"metadata": {"name": "b"}}, "Strict", duplicates=dups)
    assert info.value.message == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                  'strict decoding error: duplicate field "metadata.name"')


def test_invalid_field_validation_value():
    with pytest.raises(ApiError) as info:
        validation.check_fields(POD, copy.deepcopy(NGINX_POD), "strict")
    assert info.value.code == 422
    assert info.value.message == ('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
                                  '"strict": supported values: "", "Ignore", "Strict", "Warn"')


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
def test_type_errors_fail_in_every_mode(mode):
    obj = copy.deepcopy(NGINX_POD)
    obj["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    with pytest.raises(ApiError) as info:
        validation.check_fields(POD, obj, mode)
    assert info.value.code == 400
    assert info.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
        'ContainerPort.spec.containers.ports.containerPort of type int32')


@pytest.mark.parametrize(("path", "value", "tail"), [
    (("spec", "replicas"), "3", "string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (("metadata", "name"), 5, "number into Go struct field ObjectMeta.metadata.name of type string"),
    (("spec", "template", "spec", "containers"), {"name": "x"},
     "object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container"),
    (("metadata", "labels"), {"app": 1}, "number into Go struct field ObjectMeta.metadata.labels of type string"),
    (("spec", "replicas"), 1.5, "number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
])
def test_type_error_shapes(path, value, tail):
    obj = deployment()
    cur = obj
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    with pytest.raises(ApiError) as info:
        validation.check_fields(DEPLOY, obj, "Strict")
    assert info.value.message == f'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal {tail}'


def test_int_or_string_and_quantity_formats():
    obj = copy.deepcopy(NGINX_POD)
    obj["spec"]["containers"][0]["resources"] = {"limits": {"memory": "128Mi", "cpu": 0.5}}
    obj["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": "http"}}
    assert validation.check_fields(POD, obj, "Strict") == []
    obj["spec"]["containers"][0]["resources"]["limits"]["memory"] = "1 GB"
    with pytest.raises(ApiError) as info:
        validation.check_fields(POD, obj, "Strict")
    assert info.value.message.endswith(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def test_secret_data_must_be_base64():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "hunter2!"}}
    with pytest.raises(ApiError) as info:
        validation.check_fields(RT[("", "Secret")], secret, "Warn")
    assert info.value.message == ('Secret in version "v1" cannot be handled as a Secret: '
                                  'illegal base64 data at input byte 7')


def test_free_form_fields_are_kept():
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
           "data": {"anything": {"goes": [1]}}, "revision": 1}
    assert validation.check_fields(RT[("apps", "ControllerRevision")], rev, "Strict") == []


# --- names and metadata ----------------------------------------------------------------------------------

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def test_tutorial_pod_is_valid():
    validation.validate(POD, pod())


def test_bad_pod_name_message_b06():
    obj = pod()
    obj["metadata"]["name"] = "Foo_Bar"
    err = invalid_of(POD, obj)
    assert err.message == f'Pod "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar": {SUBDOMAIN_MSG}'
    assert causes(err) == [("FieldValueInvalid", "metadata.name", f'Invalid value: "Foo_Bar": {SUBDOMAIN_MSG}')]


def test_long_name_two_messages():
    obj = pod()
    obj["metadata"]["name"] = "a" * 254
    err = invalid_of(POD, obj)
    assert [c[2].split(": ", 2)[2] for c in causes(err)] == ["must be no more than 253 characters"]


def test_unicode_and_nul_names_rejected_b26():
    for name in ("ﬁle", "ｎｇｉｎｘ", "a\u202eb", "a\x00b"):
        obj = pod()
        obj["metadata"]["name"] = name
        err = invalid_of(POD, obj)
        assert causes(err)[0][1] == "metadata.name"
    obj = pod()
    obj["metadata"]["name"] = "a\x00b"
    assert '"a\\x00b"' in invalid_of(POD, obj).message


def test_namespace_name_is_dns_label():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "my.ns"}}
    defaults.apply_defaults(RT[("", "Namespace")], ns)
    err = invalid_of(RT[("", "Namespace")], ns)
    assert err.message == 'Namespace "my.ns" is invalid: metadata.name: Invalid value: "my.ns": must not contain dots'
    ns["metadata"]["name"] = "My_NS"
    assert causes(invalid_of(RT[("", "Namespace")], ns))[0][2] == (
        "Invalid value: \"My_NS\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
        "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
        "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def test_service_name_is_dns1035():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    defaults.apply_defaults(SVC, svc)
    err = invalid_of(SVC, svc)
    assert err.message == (
        'Service "1web" is invalid: metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower '
        "case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def test_rbac_names_allow_colons():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:controller:foo"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    validation.validate(RT[("rbac.authorization.k8s.io", "ClusterRole")], role)
    role["metadata"]["name"] = "a/b"
    err = invalid_of(RT[("rbac.authorization.k8s.io", "ClusterRole")], role)
    assert err.message == ('ClusterRole.rbac.authorization.k8s.io "a/b" is invalid: '
                           "metadata.name: Invalid value: \"a/b\": may not contain '/'")


def test_name_required_and_generate_name():
    obj = pod()
    del obj["metadata"]["name"]
    err = invalid_of(POD, obj)
    assert causes(err) == [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
    obj["metadata"]["generateName"] = "web-"
    obj["metadata"]["name"] = "web-abcde"
    validation.validate(POD, obj)


def test_namespace_forbidden_on_cluster_scoped():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": "default"}}
    err = invalid_of(RT[("", "Node")], node)
    assert causes(err) == [("FieldValueForbidden", "metadata.namespace", "Forbidden: not allowed on this type")]


def test_label_messages_b07():
    obj = pod()
    obj["metadata"]["labels"] = {"app": "a" * 64, "bad key": "ok", "tier": "-x"}
    err = invalid_of(POD, obj)
    assert causes(err) == [
        ("FieldValueInvalid", "metadata.labels", f'Invalid value: "{"a" * 64}": must be no more than 63 characters'),
        ("FieldValueInvalid", "metadata.labels",
         "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
         "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
         "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        ("FieldValueInvalid", "metadata.labels",
         "Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', "
         "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
         "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ]


def test_label_prefix_and_annotation_size():
    obj = pod()
    obj["metadata"]["labels"] = {"Example.com/app": "x"}
    assert causes(invalid_of(POD, obj))[0][2].startswith(
        'Invalid value: "Example.com/app": prefix part a lowercase RFC 1123 subdomain')
    obj = pod()
    obj["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert causes(invalid_of(POD, obj)) == [
        ("FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes")]


# --- pods ------------------------------------------------------------------------------------------------

def test_pod_needs_containers():
    err = invalid_of(POD, pod(containers=[]))
    assert err.message == 'Pod "nginx" is invalid: spec.containers: Required value'


def test_pod_container_problems():
    obj = pod(containers=[
        {"name": "Web", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]},
        {"name": "dup", "image": "busybox"}, {"name": "dup", "image": "busybox"},
    ])
    obj["spec"]["restartPolicy"] = "Sometimes"
    got = causes(invalid_of(POD, obj))
    assert ("FieldValueInvalid", "spec.containers[0].name",
            "Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
            "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')") in got
    assert ("FieldValueRequired", "spec.containers[0].image", "Required value") in got
    assert ("FieldValueInvalid", "spec.containers[0].ports[0].containerPort",
            "Invalid value: 70000: must be between 1 and 65535, inclusive") in got
    assert ("FieldValueNotSupported", "spec.containers[0].ports[0].protocol",
            'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"') in got
    assert ("FieldValueDuplicate", "spec.containers[2].name", 'Duplicate value: "dup"') in got
    assert got[-1] == ("FieldValueNotSupported", "spec.restartPolicy",
                       'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')


def test_pod_volumes_mounts_env_resources():
    obj = pod(volumes=[{"name": "data", "emptyDir": {}, "configMap": {"name": "c"}},
                       {"name": "cfg", "configMap": {"name": "c"}}, {"name": "cfg", "emptyDir": {}}])
    c = obj["spec"]["containers"][0]
    c["volumeMounts"] = [{"name": "missing", "mountPath": "/a"}, {"name": "cfg", "mountPath": "/a"}]
    c["env"] = [{"name": "A=B", "value": "1"}]
    c["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    got = causes(invalid_of(POD, obj))
    assert ("FieldValueForbidden", "spec.volumes[0].configMap", "Forbidden: may not specify more than 1 volume type") in got
    assert ("FieldValueDuplicate", "spec.volumes[2].name", 'Duplicate value: "cfg"') in got
    assert ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name", 'Not found: "missing"') in got
    assert ("FieldValueInvalid", "spec.containers[0].volumeMounts[1].mountPath",
            'Invalid value: "/a": must be unique') in got
    assert ("FieldValueInvalid", "spec.containers[0].env[0].name",
            "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII "
            "characters other than '='") in got
    assert ("FieldValueInvalid", "spec.containers[0].resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1') in got


def test_pod_update_only_image_may_change():
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    validation.validate(POD, new, old)
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080
    err = invalid_of(POD, new, old)
    assert err.message.startswith(
        'Pod "nginx" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)\n")


def test_metadata_name_immutable():
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    assert ("FieldValueInvalid", "metadata.name", 'Invalid value: "other": field is immutable') in causes(
        invalid_of(POD, new, old))


# --- workloads -------------------------------------------------------------------------------------------

def test_deployment_selector_mismatch():
    err = invalid_of(DEPLOY, deployment(labels={"app": "other", "tier": "x"}))
    assert err.message == ('Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
                           'map[string]string{"app":"other", "tier":"x"}: `selector` does not match template `labels`')


def test_deployment_replicas_strategy_restart():
    obj = deployment()
    obj["spec"]["replicas"] = -1
    obj["spec"]["strategy"] = {"type": "Recreate", "rollingUpdate": {}}
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    got = causes(invalid_of(DEPLOY, obj))
    assert got == [
        ("FieldValueInvalid", "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
        ("FieldValueNotSupported", "spec.template.spec.restartPolicy",
         'Unsupported value: "Never": supported values: "Always"'),
        ("FieldValueForbidden", "spec.strategy.rollingUpdate",
         "Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ]


def test_deployment_selector_required_and_immutable():
    obj = deployment()
    del obj["spec"]["selector"]
    assert ("FieldValueRequired", "spec.selector", "Required value") in causes(invalid_of(DEPLOY, obj))
    old = deployment()
    new = deployment(selector={"app": "web", "v": "2"}, labels={"app": "web", "v": "2"})
    err = invalid_of(DEPLOY, new, old)
    assert causes(err) == [("FieldValueInvalid", "spec.selector",
                            'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, '
                            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable")]


def test_job_restart_policy_and_immutable_template():
    job_rt = RT[("batch", "Job")]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
           "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}}}
    defaults.apply_defaults(job_rt, job)
    err = invalid_of(job_rt, job)
    assert err.message == ('Job.batch "pi" is invalid: spec.template.spec.restartPolicy: Required value: '
                           'valid values: "OnFailure", "Never"')
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    validation.validate(job_rt, job)
    new = copy.deepcopy(job)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.36"
    assert causes(invalid_of(job_rt, new, job))[0][1] == "spec.template"


def test_statefulset_forbidden_update():
    sts_rt = RT[("apps", "StatefulSet")]
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}}
    defaults.apply_defaults(sts_rt, sts)
    validation.validate(sts_rt, sts)
    new = copy.deepcopy(sts)
    new["spec"]["replicas"] = 3
    validation.validate(sts_rt, new, sts)
    new["spec"]["serviceName"] = "other"
    assert invalid_of(sts_rt, new, sts).message.startswith(
        'StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for fields other than')


# --- services, config, rbac, ingress, pvc ----------------------------------------------------------------

def svc(**spec):
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, **spec}}
    defaults.apply_defaults(SVC, obj)
    return obj


def test_service_rules():
    assert causes(invalid_of(SVC, svc())) == [("FieldValueRequired", "spec.ports", "Required value")]
    validation.validate(SVC, svc(clusterIP="None"))
    got = causes(invalid_of(SVC, svc(type="Cluster", ports=[{"port": 80}, {"port": 0, "name": "x"}])))
    assert ("FieldValueRequired", "spec.ports[0].name", "Required value") in got
    assert ("FieldValueInvalid", "spec.ports[1].port", "Invalid value: 0: must be between 1 and 65535, inclusive") in got
    assert ("FieldValueNotSupported", "spec.type",
            'Unsupported value: "Cluster": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"') in got
    assert causes(invalid_of(SVC, svc(type="ExternalName"))) == [
        ("FieldValueRequired", "spec.externalName", "Required value")]


def test_service_cluster_ip_may_not_change():
    old = svc(ports=[{"port": 80}], clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"], new["spec"]["clusterIPs"] = "None", ["None"]
    assert invalid_of(SVC, new, old).message == (
        'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set')


def test_configmap_and_secret():
    cm_rt, sec_rt = RT[("", "ConfigMap")], RT[("", "Secret")]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
          "data": {"bad key": "v", "ok.key": "v"}}
    assert causes(invalid_of(cm_rt, cm)) == [
        ("FieldValueInvalid", "data[bad key]",
         "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
         "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")]
    tls = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": "d"},
           "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}}
    assert causes(invalid_of(sec_rt, tls)) == [("FieldValueRequired", "data[tls.key]", "Required value")]
    docker = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r", "namespace": "d"},
              "type": "kubernetes.io/dockerconfigjson", "stringData": {}}
    assert causes(invalid_of(sec_rt, docker)) == [("FieldValueRequired", "data[.dockerconfigjson]", "Required value")]


def test_immutable_configmap_and_secret():
    cm_rt = RT[("", "ConfigMap")]
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
           "data": {"a": "1"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert invalid_of(cm_rt, new, old).message == (
        'ConfigMap "c" is invalid: data: Forbidden: field is immutable when `immutable` is set')
    sec_rt = RT[("", "Secret")]
    old = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"}
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/basic-auth"
    new["data"] = {"username": "YQ=="}
    assert causes(invalid_of(sec_rt, new, old)) == [
        ("FieldValueInvalid", "type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')]


def test_rbac_rules_and_bindings():
    role_rt = RT[("rbac.authorization.k8s.io", "Role")]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "d"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}
    assert invalid_of(role_rt, role).message == (
        'Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: '
        "verbs must contain at least one value")
    rb_rt = RT[("rbac.authorization.k8s.io", "RoleBinding")]
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
          "metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "alice"}]}
    defaults.apply_defaults(rb_rt, rb)
    validation.validate(rb_rt, rb)
    new = copy.deepcopy(rb)
    new["roleRef"]["name"] = "edit"
    assert causes(invalid_of(rb_rt, new, rb)) == [
        ("FieldValueInvalid", "roleRef", 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                                         'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')]


def test_ingress_paths():
    ing_rt = RT[("networking.k8s.io", "Ingress")]
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "d"},
           "spec": {"rules": [{"host": "example.com", "http": {"paths": [
               {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
               {"path": "/", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}
    assert causes(invalid_of(ing_rt, ing)) == [
        ("FieldValueInvalid", "spec.rules[0].http.paths[0].path", 'Invalid value: "api": must be an absolute path'),
        ("FieldValueRequired", "spec.rules[0].http.paths[1].pathType", "Required value: pathType must be specified"),
        ("FieldValueRequired", "spec.rules[0].http.paths[1].backend",
         "Required value: port name or number is required"),
    ]


def test_pvc_requirements():
    pvc_rt = RT[("", "PersistentVolumeClaim")]
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "d"},
           "spec": {}}
    assert causes(invalid_of(pvc_rt, pvc)) == [
        ("FieldValueRequired", "spec.accessModes", "Required value: at least 1 access mode is required"),
        ("FieldValueRequired", "spec.resources[storage]", "Required value"),
    ]


def test_errors_are_only_api_errors_on_garbage():
    for rt in RT.values():
        for garbage in ({}, {"metadata": "x", "spec": [1], "data": 5}):
            try:
                validation.validate(rt, copy.deepcopy(garbage))
            except ApiError:
                pass
