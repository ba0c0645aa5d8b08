"""Pod Security with the real kubectl: labelling a namespace, the exact refusal of a privileged pod, the warning
on a Deployment with a privileged template, and the warnings naming existing pods (security.md PSA-01, 08, 11)."""

from __future__ import annotations

import uuid


def _ns(cluster) -> str:
    name = "pss-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name, check=True)
    return name


def test_kubectl_run_privileged_pod_is_refused(cluster):
    ns = _ns(cluster)
    r = cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=baseline", check=True)
    assert r.stdout.strip() == f"namespace/{ns} labeled"
    r = cluster.kubectl("run", "p", "-n", ns, "--image=nginx", "--privileged")
    assert r.returncode == 1
    assert r.stderr.strip() == ('Error from server (Forbidden): pods "p" is forbidden: violates PodSecurity '
                                '"baseline:latest": privileged (container "p" must not set '
                                "securityContext.privileged=true)")
    r = cluster.kubectl("run", "fine", "-n", ns, "--image=nginx", check=True)
    assert r.stdout.strip() == "pod/fine created" and "Warning" not in r.stderr


def test_deployment_with_privileged_template_is_created_with_a_warning(cluster):
    ns = _ns(cluster)
    cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=baseline", check=True)
    manifest = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: d}}}}
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      containers:
      - name: c
        image: nginx
        securityContext: {{privileged: true}}
"""
    r = cluster.kubectl("apply", "-f", "-", input=manifest, check=True)
    assert r.stdout.strip() == "deployment.apps/d created"
    assert r.stderr.strip() == ('Warning: would violate PodSecurity "baseline:latest": privileged (container "c" '
                                "must not set securityContext.privileged=true)")


def test_label_stricter_level_names_violating_pods(cluster):
    ns = _ns(cluster)
    cluster.kubectl("run", "web", "-n", ns, "--image=nginx", check=True)
    r = cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted", check=True)
    assert r.stdout.strip() == f"namespace/{ns} labeled"
    assert r.stderr.strip().splitlines() == [
        f'Warning: existing pods in namespace "{ns}" violate the new PodSecurity enforce level "restricted:latest"',
        "Warning: web: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile"]
    r = cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=bogus", "--overwrite")
    assert r.returncode == 1
    assert 'Invalid value: "bogus": must be one of privileged, baseline, restricted' in r.stderr
