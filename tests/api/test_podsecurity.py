"""Pod Security Standards checks: a passing and a failing pod per check at baseline and restricted (our own
fixtures, laid out as upstream's testdata: <level>/<version>/{pass,fail}), exact messages, versions, labels."""

from __future__ import annotations

import copy

import pytest

from kubelite.api import podsecurity as pss

BASELINE = pss.LevelVersion(pss.BASELINE)
RESTRICTED = pss.LevelVersion(pss.RESTRICTED)


def restricted_pod() -> dict:
    """A pod that satisfies every restricted check (and so baseline too)."""
    return {"metadata": {"name": "p"}, "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "containers": [{"name": "c", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "cm", "configMap": {"name": "x"}}, {"name": "e", "emptyDir": {}},
                    {"name": "s", "secret": {"secretName": "x"}}, {"name": "pvc", "persistentVolumeClaim": {
                        "claimName": "x"}}, {"name": "proj", "projected": {"sources": []}},
                    {"name": "d", "downwardAPI": {"items": []}}, {"name": "csi", "csi": {"driver": "x"}},
                    {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}}


def patched(change) -> dict:
    pod = restricted_pod()
    change(pod["spec"], pod["metadata"])
    return pod


def c0(spec):
    return spec["containers"][0].setdefault("securityContext", {})


def detail(lv, pod):
    return pss.forbidden_detail(pss.evaluate_pod(lv, pod["metadata"], pod["spec"]))


# (check, failing change, baseline detail or None when baseline allows it, restricted detail)
CASES = [
    ("privileged", lambda s, m: c0(s).update(privileged=True),
     'privileged (container "c" must not set securityContext.privileged=true)',
     'privileged (container "c" must not set securityContext.privileged=true)'),
    ("hostNamespaces", lambda s, m: s.update(hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    ("capabilities_baseline", lambda s, m: c0(s)["capabilities"].update(add=["SYS_ADMIN", "NET_RAW"]),
     'non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" in '
     "securityContext.capabilities.add)",
     'unrestricted capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" in '
     "securityContext.capabilities.add)"),
    ("hostPathVolumes", lambda s, m: s["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
     'hostPath volumes (volume "host")',
     'restricted volume types (volume "host" uses restricted volume type "hostPath")'),
    ("hostPorts", lambda s, m: c0(s) and s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 8080},
                                                                          {"containerPort": 81, "hostPort": 80}]),
     'hostPort (container "c" uses hostPorts 80, 8080)', 'hostPort (container "c" uses hostPorts 80, 8080)'),
    ("appArmorProfile", lambda s, m: s["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
     'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")',
     'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")'),
    ("appArmorProfile annotation",
     lambda s, m: m.update(annotations={"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}),
     'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
     '"container.apparmor.security.beta.kubernetes.io/c=\\"unconfined\\"")',
     'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
     '"container.apparmor.security.beta.kubernetes.io/c=\\"unconfined\\"")'),
    ("seLinuxOptions", lambda s, m: c0(s).update(seLinuxOptions={"type": "spc_t", "user": "root"}),
     'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
     "user may not be set)",
     'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
     "user may not be set)"),
    ("procMount", lambda s, m: c0(s).update(procMount="Unmasked"),
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")',
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")'),
    ("seccompProfile_baseline", lambda s, m: s["securityContext"].update(seccompProfile={"type": "Unconfined"}),
     'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
     'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("sysctls", lambda s, m: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"},
                                                                  {"name": "net.ipv4.tcp_syncookies", "value": "1"}]),
     "forbidden sysctls (kernel.msgmax)", "forbidden sysctls (kernel.msgmax)"),
    ("windowsHostProcess",
     lambda s, m: s["securityContext"].update(windowsOptions={"hostProcess": True}) or c0(s).update(
         windowsOptions={"hostProcess": True}),
     'hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)',
     'hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)'),
    ("restrictedVolumes", lambda s, m: s["volumes"].extend([{"name": "n", "nfs": {"server": "x", "path": "/"}},
                                                            {"name": "g", "gitRepo": {"repository": "x"}}]),
     None, 'restricted volume types (volumes "n", "g" use restricted volume types "gitRepo", "nfs")'),
    ("allowPrivilegeEscalation", lambda s, m: c0(s).pop("allowPrivilegeEscalation"),
     None, 'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)'),
    ("runAsNonRoot explicit", lambda s, m: c0(s).update(runAsNonRoot=False),
     None, 'runAsNonRoot != true (container "c" must not set securityContext.runAsNonRoot=false)'),
    ("runAsNonRoot missing", lambda s, m: s["securityContext"].pop("runAsNonRoot"),
     None, 'runAsNonRoot != true (pod or containers "init", "c" must set securityContext.runAsNonRoot=true)'),
    ("runAsUser", lambda s, m: s["securityContext"].update(runAsUser=0) or c0(s).update(runAsUser=0),
     None, 'runAsUser=0 (pod and container "c" must not set runAsUser=0)'),
    ("seccompProfile_restricted", lambda s, m: s["securityContext"].pop("seccompProfile"),
     None, 'seccompProfile (pod or containers "init", "c" must set securityContext.seccompProfile.type to '
           '"RuntimeDefault" or "Localhost")'),
    ("capabilities_restricted", lambda s, m: c0(s).pop("capabilities"),
     None, 'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"])'),
]

# (check, passing change): allowed at restricted (and so at baseline)
PASSING = [
    ("privileged", lambda s, m: c0(s).update(privileged=False)),
    ("hostNamespaces", lambda s, m: s.update(hostNetwork=False, hostPID=False, hostIPC=False)),
    ("capabilities", lambda s, m: c0(s)["capabilities"].update(add=["NET_BIND_SERVICE"])),
    ("hostPorts", lambda s, m: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 0}])),
    ("appArmorProfile", lambda s, m: s["securityContext"].update(appArmorProfile={"type": "Localhost",
                                                                                   "localhostProfile": "x"})
     or m.update(annotations={"container.apparmor.security.beta.kubernetes.io/c": "localhost/x"})),
    ("seLinuxOptions", lambda s, m: c0(s).update(seLinuxOptions={"type": "container_init_t", "level": "s0:c1"})),
    ("procMount", lambda s, m: c0(s).update(procMount="Default")),
    ("seccompProfile", lambda s, m: c0(s).update(seccompProfile={"type": "Localhost", "localhostProfile": "x"})),
    ("sysctls", lambda s, m: s["securityContext"].update(sysctls=[{"name": "net.ipv4.ip_local_port_range",
                                                                   "value": "1 2"}])),
    ("windowsHostProcess", lambda s, m: c0(s).update(windowsOptions={"hostProcess": False})),
    ("runAsNonRoot per container", lambda s, m: [s["securityContext"].pop("runAsNonRoot")] + [
        c.setdefault("securityContext", {}).update(runAsNonRoot=True) for c in s["initContainers"] + s["containers"]]),
    ("runAsUser", lambda s, m: s["securityContext"].update(runAsUser=1000)),
    ("volumes", lambda s, m: s["volumes"].append({"name": "img", "image": {"reference": "x"}})),
]


def test_compliant_fixture_passes_everywhere():
    pod = restricted_pod()
    for lv in (BASELINE, RESTRICTED, pss.LevelVersion(pss.RESTRICTED, 20), pss.LevelVersion(pss.BASELINE, 0)):
        assert pss.evaluate_pod(lv, pod["metadata"], pod["spec"]) == [], lv


@pytest.mark.parametrize("check,change,baseline,restricted", CASES, ids=[c[0] for c in CASES])
def test_failing_fixture(check, change, baseline, restricted):
    pod = patched(change)
    assert detail(BASELINE, pod) == (baseline or "")
    assert detail(RESTRICTED, pod) == restricted


@pytest.mark.parametrize("check,change", PASSING, ids=[c[0] for c in PASSING])
def test_passing_fixture(check, change):
    pod = patched(change)
    assert detail(BASELINE, pod) == ""
    assert detail(RESTRICTED, pod) == ""


def test_privileged_level_allows_anything():
    pod = patched(lambda s, m: c0(s).update(privileged=True) or s.update(hostPID=True))
    assert pss.evaluate_pod(pss.LevelVersion(pss.PRIVILEGED), pod["metadata"], pod["spec"]) == []


def test_minimal_pod_in_restricted_message_order():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "p", "image": "nginx"}]}}
    assert detail(RESTRICTED, pod) == (
        'allowPrivilegeEscalation != false (container "p" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "p" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "p" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "p" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")')
    assert detail(BASELINE, pod) == ""


def test_baseline_checks_come_before_restricted_ones_sorted_by_id():
    pod = {"metadata": {}, "spec": {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                                    "containers": [{"name": "c", "image": "x", "ports": [{"hostPort": 1}],
                                                    "securityContext": {"privileged": True}}]}}
    reasons = [r.reason for r in pss.evaluate_pod(BASELINE, pod["metadata"], pod["spec"])]
    assert reasons == ["host namespaces", "hostPath volumes", "hostPort", "privileged"]
    reasons = [r.reason for r in pss.evaluate_pod(RESTRICTED, pod["metadata"], pod["spec"])]
    assert reasons == ["host namespaces", "hostPort", "privileged", "allowPrivilegeEscalation != false",
                       "unrestricted capabilities", "restricted volume types", "runAsNonRoot != true",
                       "seccompProfile"]


def test_plural_containers_and_ephemeral_containers_are_checked():
    pod = restricted_pod()
    pod["spec"]["containers"].append(copy.deepcopy(pod["spec"]["containers"][0]) | {"name": "d"})
    for c in pod["spec"]["containers"]:
        c["securityContext"]["privileged"] = True
    pod["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "x",
                                           "securityContext": {"privileged": True, "allowPrivilegeEscalation": False,
                                                               "capabilities": {"drop": ["ALL"]}}}]
    assert detail(BASELINE, pod) == ('privileged (containers "c", "d", "debug" must not set '
                                     "securityContext.privileged=true)")


# ---------------------------------------------------------------- versions


def test_versioned_checks():
    run_as_root = patched(lambda s, m: s["securityContext"].update(runAsUser=0))
    assert detail(pss.LevelVersion(pss.RESTRICTED, 22), run_as_root) == ""  # runAsUser from v1.23
    assert detail(pss.LevelVersion(pss.RESTRICTED, 23), run_as_root).startswith("runAsUser=0")
    no_drop = patched(lambda s, m: c0(s).pop("capabilities"))
    assert detail(pss.LevelVersion(pss.RESTRICTED, 21), no_drop) == ""  # drop ALL required from v1.22
    add_raw = patched(lambda s, m: c0(s)["capabilities"].update(add=["NET_RAW"]))
    # before v1.22 the baseline capabilities check applies under restricted too
    assert detail(pss.LevelVersion(pss.RESTRICTED, 21), add_raw).startswith("non-default capabilities")
    engine = patched(lambda s, m: c0(s).update(seLinuxOptions={"type": "container_engine_t"}))
    assert detail(pss.LevelVersion(pss.BASELINE, 30), engine).startswith("seLinuxOptions")
    assert detail(pss.LevelVersion(pss.BASELINE, 31), engine) == ""
    keepalive = patched(lambda s, m: s["securityContext"].update(
        sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "1"}]))
    assert detail(pss.LevelVersion(pss.BASELINE, 28), keepalive) == "forbidden sysctls (net.ipv4.tcp_keepalive_time)"
    assert detail(pss.LevelVersion(pss.BASELINE, 29), keepalive) == ""
    rmem = patched(lambda s, m: s["securityContext"].update(sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "1"}]))
    assert detail(pss.LevelVersion(pss.BASELINE, 31), rmem) != ""
    assert detail(BASELINE, rmem) == ""
    reserved = patched(lambda s, m: s["securityContext"].update(
        sysctls=[{"name": "net.ipv4.ip_local_reserved_ports", "value": "1"}]))
    assert detail(pss.LevelVersion(pss.BASELINE, 26), reserved) != ""
    assert detail(pss.LevelVersion(pss.BASELINE, 27), reserved) == ""
    # a version newer than the server evaluates as the newest policy
    assert detail(pss.LevelVersion(pss.BASELINE, 99), rmem) == ""


def test_seccomp_annotations_before_v1_19():
    pod = patched(lambda s, m: m.update(annotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}))
    assert detail(pss.LevelVersion(pss.BASELINE, 18), pod) == (
        'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")')
    assert detail(pss.LevelVersion(pss.BASELINE, 19), pod) == ""


# ---------------------------------------------------------------- namespace labels


def test_policy_from_labels():
    policy, errs = pss.policy_to_evaluate({"pod-security.kubernetes.io/enforce": "baseline",
                                           "pod-security.kubernetes.io/enforce-version": "v1.29",
                                           "pod-security.kubernetes.io/audit": "restricted"})
    assert not errs
    assert str(policy.enforce) == "baseline:v1.29"
    assert str(policy.audit) == "restricted:latest"
    # warn follows a stricter explicit enforce level when warn is not labelled
    assert str(policy.warn) == "baseline:v1.29"
    policy, _ = pss.policy_to_evaluate({"pod-security.kubernetes.io/enforce": "baseline",
                                        "pod-security.kubernetes.io/warn": "privileged"})
    assert str(policy.warn) == "privileged:latest"
    assert pss.policy_to_evaluate({})[0] == pss.Policy()


def test_invalid_labels_fail_closed_for_enforce_open_for_warn():
    policy, errs = pss.policy_to_evaluate({"pod-security.kubernetes.io/enforce": "bogus",
                                           "pod-security.kubernetes.io/warn": "nope",
                                           "pod-security.kubernetes.io/audit-version": "1.2"})
    assert str(policy.enforce) == "restricted:latest"  # PSA-10
    assert policy.warn.level == pss.PRIVILEGED
    assert [(e.label, e.message) for e in errs] == [
        ("pod-security.kubernetes.io/enforce", "must be one of privileged, baseline, restricted"),
        ("pod-security.kubernetes.io/audit-version", 'must be "latest" or "v1.x"'),
        ("pod-security.kubernetes.io/warn", "must be one of privileged, baseline, restricted")]


def test_extract_pod_spec_from_workloads():
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}
    assert pss.extract_pod_spec("apps", "deployments", {"spec": {"template": template}}) == (
        template["metadata"], template["spec"])
    cron = {"spec": {"jobTemplate": {"spec": {"template": template}}}}
    assert pss.extract_pod_spec("batch", "cronjobs", cron)[1] is template["spec"]
    assert pss.extract_pod_spec("", "podtemplates", {"template": template})[1] is template["spec"]
    assert pss.extract_pod_spec("", "configmaps", {}) is None
    assert pss.extract_pod_spec("apps", "deployments", {"spec": {}}) is None
