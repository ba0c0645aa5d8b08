"""Upstream's AdmissionConfiguration file (`--admission-control-config-file`): per-plugin configuration, given
inline (`configuration:`) or in a file of its own (`path:`). Only PodSecurity reads one here."""

from __future__ import annotations

import os
from typing import Any

import yaml

_KINDS = {"AdmissionConfiguration"}
_POD_SECURITY_VERSIONS = {"pod-security.admission.config.k8s.io/v1", "pod-security.admission.config.k8s.io/v1beta1",
                          "pod-security.admission.config.k8s.io/v1alpha1"}


def load_admission_config(path: str) -> dict[str, Any]:
    """{plugin name: configuration body}; ValueError for a malformed file."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict) or doc.get("kind") not in _KINDS:
        raise ValueError(f"{path}: not an AdmissionConfiguration")
    out: dict[str, Any] = {}
    for plugin in doc.get("plugins") or ():
        name = plugin.get("name")
        body = plugin.get("configuration")
        if body is None and plugin.get("path"):
            conf_path = plugin["path"]
            if not os.path.isabs(conf_path):
                conf_path = os.path.join(os.path.dirname(os.path.abspath(path)), conf_path)
            with open(conf_path) as f:
                body = yaml.safe_load(f)
        if name == "PodSecurity" and body is not None:
            if body.get("kind") != "PodSecurityConfiguration" or body.get("apiVersion") not in _POD_SECURITY_VERSIONS:
                raise ValueError(f"{path}: PodSecurity configuration must be a PodSecurityConfiguration of "
                                 "pod-security.admission.config.k8s.io/v1")
        out[str(name)] = body
    return out
