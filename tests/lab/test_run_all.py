"""`kubelite lab run-all` end to end, with the real kubectl against real `kubelite up` clusters.

CI runs a subset of API-only scenarios (no containers: seconds each). Set KUBELITE_LAB_ALL=1 for every
scenario; the ones with real containers need root + runc and hold the real-node lock for their clusters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CI_SUBSET = "anonymous-admin,rbac-bind,impersonate"
CONTAINERS = "sa-token-theft,privileged-hostpath,rbac-create-pods,kubelet-anonymous,flat-network"


def run_all(tmp_path, only: str, *, lock: bool = False, timeout: float = 600) -> list[dict]:
    cmd = [sys.executable, "-m", "kubelite.cli", "lab", "run-all", "-o", "json", "--lang", "en", "--data-dir",
           str(tmp_path / "lab")]
    if only:
        cmd += ["--only", only]
    if lock:
        cmd = ["flock", "/tmp/kubelite-realnode.lock", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    records = json.loads(r.stdout)
    for rec in records:
        print(f"{rec['id']}: weak={rec['weak']} defended={rec['defended']} default={rec['default']} "
              f"evidence={len(rec['evidence'])} {rec['seconds']}s")
    assert records, r.stderr[-3000:]
    return records


def check(records: list[dict], stderr_hint: str = "") -> None:
    for rec in records:
        if rec.get("skipped"):
            continue
        assert rec["weak"] == "succeeded", rec
        assert rec["defended"] == "blocked", rec
        assert rec["evidence"], rec
        assert rec["default"] in (rec["default_expected"], None), rec
        assert rec["ok"], rec


def test_run_all_ci_subset(tmp_path):
    records = run_all(tmp_path, CI_SUBSET)
    assert [r["id"] for r in records] == CI_SUBSET.split(",")
    check(records)
    # the JSON shape the issue asks for
    assert set(records[0]) >= {"id", "weak", "defended", "evidence"}
    assert any("system:anonymous" in line for line in records[0]["evidence"])


@pytest.mark.skipif(not os.environ.get("KUBELITE_LAB_ALL"), reason="set KUBELITE_LAB_ALL=1 for every scenario")
def test_run_all_every_scenario(tmp_path):
    check(run_all(tmp_path, "", lock=os.geteuid() == 0, timeout=1200))


def test_lab_list_and_zh(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kubelite.cli", "lab", "list", "--lang", "zh", "--data-dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "anonymous-admin" in r.stdout and "MS-TA9029" in r.stdout and "匿名" in r.stdout
