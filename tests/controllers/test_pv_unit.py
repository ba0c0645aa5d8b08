"""Decisions of the PersistentVolume binder and the local-path provisioner."""

from __future__ import annotations

from kubelite.controllers.localpath import LocalPathConfig, provision, should_delete, wants_provisioning
from kubelite.controllers.persistentvolume import (
    default_storage_class,
    find_best_volume,
    pick_default_class,
    volume_matches,
)


def pvc(name="data", size="1Gi", modes=("ReadWriteOnce",), cls="local-path", annotations=None, **spec):
    return {"metadata": {"name": name, "namespace": "default", "uid": "1234", "resourceVersion": "7",
                         "annotations": annotations or {}},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}},
                     "storageClassName": cls, **spec}}


def pv(name, size="1Gi", modes=("ReadWriteOnce",), cls="local-path", labels=None, claim_ref=None, phase="Available",
       hostname=None):
    obj = {"metadata": {"name": name, "labels": labels or {}},
           "spec": {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls},
           "status": {"phase": phase}}
    if claim_ref:
        obj["spec"]["claimRef"] = claim_ref
    if hostname:
        obj["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}]}]}}
    return obj


def test_matching_rules():
    c = pvc()
    assert volume_matches(c, pv("a"))
    assert not volume_matches(c, pv("a", size="500Mi"))
    assert not volume_matches(pvc(size="1Gi"), pv("a", size="1G"))  # 1G < 1Gi
    assert volume_matches(pvc(size="1G"), pv("a", size="1Gi"))
    assert not volume_matches(c, pv("a", cls="other"))
    assert not volume_matches(pvc(modes=("ReadWriteMany",)), pv("a"))
    assert volume_matches(pvc(modes=("ReadOnlyMany",)), pv("a", modes=("ReadWriteOnce", "ReadOnlyMany")))
    sel = pvc(selector={"matchLabels": {"tier": "fast"}})
    assert volume_matches(sel, pv("a", labels={"tier": "fast"})) and not volume_matches(sel, pv("a"))
    n1 = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}
    assert volume_matches(c, pv("a", hostname="n1"), n1) and not volume_matches(c, pv("a", hostname="n2"), n1)


def test_best_volume_is_prebound_then_smallest():
    c = pvc()
    vols = [pv("big", size="10Gi"), pv("small", size="2Gi"), pv("bound", claim_ref={"name": "x", "namespace": "default"},
                                                              phase="Bound")]
    assert find_best_volume(c, vols)["metadata"]["name"] == "small"
    pre = pv("pre", size="5Gi", claim_ref={"name": "data", "namespace": "default"})
    assert find_best_volume(c, vols + [pre])["metadata"]["name"] == "pre"
    assert find_best_volume(pvc(size="100Gi"), vols) is None


def test_default_class():
    sc = default_storage_class()
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]) == (
        "rancher.io/local-path", "WaitForFirstConsumer", "Delete")
    other = {"metadata": {"name": "x", "creationTimestamp": "2025-01-01T00:00:00Z"}}
    sc["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    assert pick_default_class([other, sc]) is sc
    assert pick_default_class([other]) is None


def test_provision_local_path_volume():
    ann = {"volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
           "volume.kubernetes.io/selected-node": "n1"}
    c = pvc(annotations=ann)
    assert wants_provisioning(c, "rancher.io/local-path")
    d = provision(c, default_storage_class(), LocalPathConfig())
    v = d.volume
    assert v["metadata"]["name"] == "pvc-1234"
    assert v["spec"]["hostPath"] == {"path": "/var/lib/kubelite/storage/pvc-1234_default_data",
                                     "type": "DirectoryOrCreate"}
    assert v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["n1"]
    assert v["spec"]["claimRef"]["uid"] == "1234" and v["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert v["spec"]["capacity"] == {"storage": "1Gi"}
    assert provision(pvc(annotations=ann, modes=("ReadWriteMany",)), default_storage_class(), LocalPathConfig()).error
    assert provision(pvc(annotations={}), default_storage_class(), LocalPathConfig()).error == \
        "configuration error, no node was specified"


def test_only_released_delete_volumes_of_ours_are_deleted():
    v = pv("a", phase="Released")
    v["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}
    v["spec"]["persistentVolumeReclaimPolicy"] = "Delete"
    assert should_delete(v, "rancher.io/local-path")
    v["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert not should_delete(v, "rancher.io/local-path")
