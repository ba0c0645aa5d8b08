"""The selector the API server gives a Job on create (upstream's job strategy), shared with the controller."""

from __future__ import annotations

from typing import Any

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def generate_selector(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(spec.selector, labels to add to the template) when manualSelector is not true."""
    uid = job["metadata"]["uid"]
    name = job["metadata"]["name"]
    labels = {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name,
              LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name}
    return {"matchLabels": {CONTROLLER_UID_LABEL: uid}}, labels


def set_generated_selector(job: dict[str, Any]) -> None:
    """On create: a Job without manualSelector gets the generated selector and template labels."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    selector, labels = generate_selector(job)
    spec["selector"] = selector
    template = spec.setdefault("template", {})
    if isinstance(template, dict):
        meta = template.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
