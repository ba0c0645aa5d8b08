"""The real kubectl against CustomResourceDefinitions: the CronTab example of the upstream docs."""

from __future__ import annotations

import time

from tests.kubectl_output import header, rows

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                cronSpec:
                  type: string
                image:
                  type: string
                replicas:
                  type: integer
      additionalPrinterColumns:
      - name: Spec
        type: string
        description: The cron spec defining the interval a CronJob is run
        jsonPath: .spec.cronSpec
      - name: Replicas
        type: integer
        description: The number of jobs launched by the CronJob
        jsonPath: .spec.replicas
      - name: Age
        type: date
        jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
"""

CRONTAB = """\
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
  replicas: 1
"""


def ok(cluster, *args, input=None):
    return cluster.kubectl(*args, input=input, check=True).stdout


def test_crontab_round_trip(cluster):
    # warm the discovery cache first: kubectl must notice the new type on a cache miss
    ok(cluster, "get", "ns")
    assert ok(cluster, "apply", "-f", "-", input=CRD).strip() == \
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
    try:
        empty = cluster.kubectl("get", "crontabs")
        assert empty.returncode == 0 and empty.stderr.strip() == "No resources found in default namespace."
        assert ok(cluster, "apply", "-f", "-", input=CRONTAB).strip() == \
            "crontab.stable.example.com/my-new-cron-object created"
        assert ok(cluster, "apply", "-f", "-", input=CRONTAB).strip() == \
            "crontab.stable.example.com/my-new-cron-object unchanged"
        for name in ("crontabs", "ct", "crontab", "crontabs.stable.example.com"):
            out = ok(cluster, "get", name)
            assert header(out) == ["NAME", "SPEC", "REPLICAS", "AGE"], out
            assert rows(out)[0][:3] == ["my-new-cron-object", "* * * * */5", "1"]

        bad = CRONTAB.replace("my-new-cron-object", "bad-cron").replace("replicas: 1", 'replicas: "string"')
        r = cluster.kubectl("apply", "-f", "-", input=bad)
        assert r.returncode != 0
        assert r.stderr.strip() == (
            'The CronTab "bad-cron" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must '
            'be of type integer: "string"')

        unknown = CRONTAB.replace("my-new-cron-object", "strict-cron").replace("replicas: 1", "replicas: 1\n  foo: 1")
        r = cluster.kubectl("create", "-f", "-", input=unknown)
        assert r.returncode != 0 and 'unknown field "spec.foo"' in r.stderr

        explain = ok(cluster, "explain", "crontab.spec")
        assert "KIND:       CronTab" in explain and "VERSION:    v1" in explain
        for field in ("cronSpec\t<string>", "image\t<string>", "replicas\t<integer>"):
            assert field in explain, explain

        r = cluster.kubectl("patch", "ct", "my-new-cron-object", "-p", '{"spec":{"replicas":2}}')
        assert r.returncode != 0 and "application/strategic-merge-patch+json is not supported" in r.stderr
        assert ok(cluster, "patch", "ct", "my-new-cron-object", "--type=merge", "-p",
                  '{"spec":{"replicas":2}}').strip() == "crontab.stable.example.com/my-new-cron-object patched"

        crd = ok(cluster, "get", "crd", "crontabs.stable.example.com", "-o",
                 "jsonpath={.status.conditions[?(@.type=='Established')].status}")
        assert crd == "True"
        ok(cluster, "wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=5s")
        assert "crontabs" in ok(cluster, "api-resources", "--api-group=stable.example.com")
    finally:
        out = ok(cluster, "delete", "crd", "crontabs.stable.example.com")
    assert out.strip() == 'customresourcedefinition.apiextensions.k8s.io "crontabs.stable.example.com" deleted'
    r = cluster.kubectl("get", "crontabs", "my-new-cron-object")
    assert r.returncode != 0
    ok(cluster, "apply", "-f", "-", input=CRD)
    try:
        gone = cluster.kubectl("get", "crontabs")
        assert gone.stderr.strip() == "No resources found in default namespace.", gone.stderr
    finally:
        ok(cluster, "delete", "crd", "crontabs.stable.example.com")


def test_crds_survive_a_restart(fresh_cluster):
    ok(fresh_cluster, "apply", "-f", "-", input=CRD)
    ok(fresh_cluster, "apply", "-f", "-", input=CRONTAB)
    fresh_cluster.stop()
    fresh_cluster.start()
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline:
        r = fresh_cluster.kubectl("get", "ct")
        out = r.stdout
        if r.returncode == 0 and "my-new-cron-object" in out:
            break
        time.sleep(0.2)
    assert rows(out)[0][:3] == ["my-new-cron-object", "* * * * */5", "1"], out
