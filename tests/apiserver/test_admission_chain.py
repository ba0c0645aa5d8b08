"""The admission chain itself: plugin list semantics, upstream order, the two phases, hosted legacy plugins, and
PodSecurity on pod subresources (PSA-12) and exemptions, against a real store without HTTP."""

from __future__ import annotations

import asyncio

import pytest

from kubelite.api.resources import Registry
from kubelite.apiserver import admission
from kubelite.apiserver.admission.pod_security import PodSecurity
from kubelite.apiserver.config import ServerConfig
from kubelite.apiserver.context import ApiContext
from kubelite.apiserver.request_info import RequestInfo
from kubelite.storage.sqlite import SQLiteStore


def test_default_plugins_and_flags():
    assert admission.enabled_plugins() == [
        "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "PodSecurity", "Priority", "DefaultTolerationSeconds",
        "DefaultStorageClass", "DefaultIngressClass", "ResourceQuota"]
    got = admission.enabled_plugins(["DenyServiceExternalIPs", "AlwaysPullImages", "NodeRestriction",
                                     "TaintNodesByCondition"], ["ServiceAccount", "ResourceQuota"])
    # upstream's order, whatever the order of the flags
    assert got == ["NamespaceLifecycle", "LimitRanger", "NodeRestriction", "TaintNodesByCondition",
                   "AlwaysPullImages", "PodSecurity", "Priority", "DefaultTolerationSeconds", "DefaultStorageClass",
                   "DefaultIngressClass", "DenyServiceExternalIPs"]
    with pytest.raises(ValueError, match="unknown"):
        admission.enabled_plugins(["Nope"])
    with pytest.raises(ValueError, match="overlapped"):
        admission.enabled_plugins(["PodSecurity"], ["PodSecurity"])
    # upstream names kubelite has nothing to do for still parse
    assert "MutatingAdmissionWebhook" not in admission.enabled_plugins(["MutatingAdmissionWebhook"])
    assert admission.parse_plugin_list(" A, B,,C ") == ["A", "B", "C"]


def test_chain_hosts_legacy_plugins_in_order_and_runs_phases():
    calls = []

    async def node_restriction(ctx, op, rt, obj, old, info, dry):
        calls.append("NodeRestriction")

    class Mut:
        name = "Priority"

        async def admit(self, ctx, a):
            calls.append("admit")

        async def validate(self, ctx, a):
            calls.append("Priority")

    class First:
        name = "NamespaceLifecycle"

        async def validate(self, ctx, a):
            calls.append("NamespaceLifecycle")

    chain = admission.AdmissionChain([Mut(), First()])
    chain.append(node_restriction)
    assert chain.names == ["NamespaceLifecycle", "NodeRestriction", "Priority"]
    rt = Registry().get("", "v1", "pods")
    info = RequestInfo(is_resource=True, path="", verb="create", namespace="x", resource="pods")
    asyncio.run(chain.mutate(None, "CREATE", rt, {}, None, info, False))
    asyncio.run(chain.validate(None, "CREATE", rt, {}, None, info, False))
    assert calls == ["admit", "NamespaceLifecycle", "NodeRestriction", "Priority"]
    disabled = admission.AdmissionChain(disabled={"NodeRestriction"})
    disabled.append(node_restriction)
    assert disabled.names == []


def test_build_chain_from_config(tmp_path):
    conf = ServerConfig(data_dir=str(tmp_path), admission_enable=["DenyServiceExternalIPs"],
                        admission_disable=["LimitRanger"])
    names = admission.build_chain(conf).names
    assert "DenyServiceExternalIPs" in names and "LimitRanger" not in names and names[0] == "NamespaceLifecycle"


# ---------------------------------------------------------------- PodSecurity against a real store


async def _ctx(tmp_path, labels):
    from kubelite.apiserver import codec

    store = SQLiteStore(str(tmp_path / "state.db"), fsync=False)
    await store.start()
    ctx = ApiContext(config=ServerConfig(data_dir=str(tmp_path)), store=store, registry=Registry())
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": labels}}
    await store.create(ctx.registry.get("", "v1", "namespaces").key("", "x"), codec.encode(ns))
    return ctx


def _privileged_pod(ephemeral=False):
    pod = {"metadata": {"name": "p", "namespace": "x"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    if ephemeral:
        pod["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox",
                                               "securityContext": {"privileged": True}}]
    return pod


def _attrs(ctx, op, obj, old, sub="", user=None):
    rt = ctx.registry.get("", "v1", "pods")
    info = RequestInfo(is_resource=True, path="", verb="update", namespace="x", resource="pods", name="p",
                       subresource=sub)
    return admission.Attributes(op=op, rt=rt, obj=obj, old=old, info=info, dry=False, user=user)


def test_psa_12_subresources(tmp_path):
    async def run():
        ctx = await _ctx(tmp_path, {"pod-security.kubernetes.io/enforce": "baseline"})
        plugin = PodSecurity()
        try:
            old, new = _privileged_pod(), _privileged_pod(ephemeral=True)
            # a privileged debug container through pods/ephemeralcontainers is refused
            with pytest.raises(Exception) as e:
                await plugin.validate(ctx, _attrs(ctx, "UPDATE", new, old, "ephemeralcontainers"))
            assert e.value.code == 403
            assert e.value.message == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                       '(container "debug" must not set securityContext.privileged=true)')
            # exec, attach, log, status… are not evaluated
            for sub in ("exec", "attach", "log", "status", "binding", "eviction", "portforward", "proxy"):
                await plugin.validate(ctx, _attrs(ctx, "UPDATE", new, old, sub))
            # an update that changes nothing the policy looks at is not re-evaluated
            bad = _privileged_pod()
            bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
            relabelled = _privileged_pod()
            relabelled["spec"]["containers"][0]["securityContext"] = {"privileged": True}
            relabelled["metadata"]["labels"] = {"a": "b"}
            await plugin.validate(ctx, _attrs(ctx, "UPDATE", relabelled, bad))
        finally:
            await ctx.store.close()

    asyncio.run(run())


def test_exemptions_and_audit_annotations(tmp_path):
    from kubelite.apiserver.authn import UserInfo

    async def run():
        ctx = await _ctx(tmp_path, {"pod-security.kubernetes.io/enforce": "baseline",
                                    "pod-security.kubernetes.io/audit": "restricted"})
        pod = _privileged_pod()
        pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        try:
            plugin = PodSecurity.from_config({"exemptions": {"usernames": ["ops"], "runtimeClasses": ["kata"]}})
            a = _attrs(ctx, "CREATE", pod, None, user=UserInfo(name="ops"))
            await plugin.validate(ctx, a)
            assert a.annotations == {"pod-security.kubernetes.io/exempt": "user"}
            kata = _privileged_pod()
            kata["spec"]["runtimeClassName"] = "kata"
            a = _attrs(ctx, "CREATE", kata, None)
            await plugin.validate(ctx, a)
            assert a.annotations == {"pod-security.kubernetes.io/exempt": "runtimeClass"}
            plain = _privileged_pod()
            a = _attrs(ctx, "CREATE", plain, None)
            await plugin.validate(ctx, a)
            assert a.annotations["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
            assert a.annotations["pod-security.kubernetes.io/audit-violations"].startswith(
                'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false')
            # a configured default applies to unlabelled levels
            strict = PodSecurity.from_config({"defaults": {"warn": "restricted", "warn-version": "v1.30"}})
            a = _attrs(ctx, "CREATE", _privileged_pod(), None)
            await strict.validate(ctx, a)
            assert a.warnings and a.warnings[0].startswith('would violate PodSecurity "restricted:v1.30"')
        finally:
            await ctx.store.close()

    asyncio.run(run())


def test_invalid_enforce_label_evaluates_restricted(tmp_path):
    """PSA-10: a label that was stored before it could be checked still fails closed."""
    async def run():
        ctx = await _ctx(tmp_path, {"pod-security.kubernetes.io/enforce": "bogus"})
        try:
            with pytest.raises(Exception) as e:
                await PodSecurity().validate(ctx, _attrs(ctx, "CREATE", _privileged_pod(), None))
            assert 'violates PodSecurity "restricted:latest"' in e.value.message
        finally:
            await ctx.store.close()

    asyncio.run(run())
