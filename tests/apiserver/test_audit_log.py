"""The audit log writer: JSON lines off the request path, lumberjack-style rotation, 0600 files."""

from __future__ import annotations

import json
import os
import re
import stat
import time

import pytest

from kubelite.apiserver import audit


def _event(n: int, **extra) -> dict:
    now = time.time()
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
            "stage": "ResponseComplete", "requestURI": "/api/v1/secrets", "verb": "list",
            "user": {"username": "u"}, "sourceIPs": ["127.0.0.1"], "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": now, "stageTimestamp": now, **extra}


def test_micro_time_is_rfc3339_with_microseconds():
    assert audit.micro_time(0.25) == "1970-01-01T00:00:00.250000Z"


def test_backend_writes_json_lines_with_a_0600_file(tmp_path):
    path = tmp_path / "logs" / "audit.log"
    backend = audit.AuditBackend(audit.RotatingFile(str(path)))
    try:
        for i in range(50):
            backend.emit(_event(i))
        backend.flush()
    finally:
        backend.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert [json.loads(line)["auditID"] for line in lines] == [f"id-{i}" for i in range(50)]
    first = json.loads(lines[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["stageTimestamp"])


def test_existing_file_is_made_0600(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text("")
    os.chmod(path, 0o644)
    audit.RotatingFile(str(path)).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_bodies_are_decoded_in_the_writer(tmp_path):
    path = tmp_path / "audit.log"
    backend = audit.AuditBackend(audit.RotatingFile(str(path)))
    obj = b'{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"m"}]}}'
    status = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nope",' \
             b'"reason":"Forbidden","details":{"kind":"pods"},"code":403}'
    try:
        backend.emit(_event(1, requestObject=audit._Raw(obj, "application/json", True),
                            responseObject=audit._Raw(b"kind: Pod\n", "application/yaml", False),
                            responseStatus=audit._Raw(status, "", False), _code=403,
                            objectRef={"resource": "pods"}, _name_from=audit._Raw(obj, "application/json", False)))
        backend.emit(_event(2, requestObject=audit._Raw(b"{broken", "application/json", False)))
        backend.flush()
    finally:
        backend.close()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["requestObject"] == {"kind": "Pod", "metadata": {"name": "p"}}  # omitManagedFields
    assert first["responseObject"] == {"kind": "Pod"}
    assert first["responseStatus"] == {"metadata": {}, "status": "Failure", "message": "nope",
                                       "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}
    assert first["objectRef"] == {"resource": "pods", "name": "p"}
    assert "_code" not in first and "_name_from" not in first
    assert "requestObject" not in second  # an undecodable body is left out, the event is still written


def test_rotation_by_size_keeps_maxbackup_newest(tmp_path):
    path = tmp_path / "audit.log"
    out = audit.RotatingFile(str(path), max_bytes=1000, max_backups=2)
    line = b"x" * 399 + b"\n"
    for _ in range(12):  # two lines per file
        out.write(line)
        time.sleep(0.002)  # distinct millisecond timestamps, as lumberjack names them
    out.close()
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log")
    assert len(backups) == 2
    for name in backups:
        assert re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", name), name
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
        assert (tmp_path / name).stat().st_size == 800
    assert path.stat().st_size == 800


def test_rotation_prunes_by_age(tmp_path):
    path = tmp_path / "audit.log"
    old = tmp_path / "audit-2020-01-01T00-00-00.000.log"
    old.write_text("old\n")
    os.utime(old, (time.time() - 40 * 86400, time.time() - 40 * 86400))
    out = audit.RotatingFile(str(path), max_bytes=10, max_age_days=30)
    out.write(b"0123456789\n")
    out.write(b"0123456789\n")  # rotates, then prunes
    out.close()
    assert not old.exists()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("audit-")]) == 1


def test_build_needs_policy_and_path_and_checks_flags(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert audit.build(str(policy), None) is None
    assert audit.build(None, str(tmp_path / "a.log")) is None
    with pytest.raises(ValueError, match="can't be a negative number"):
        audit.build(str(policy), str(tmp_path / "a.log"), max_backups=-1)
    with pytest.raises(ValueError, match='invalid audit log format "legacy"'):
        audit.build(str(policy), str(tmp_path / "a.log"), log_format="legacy")
    auditor = audit.build(str(policy), str(tmp_path / "a.log"), max_size_mb=1)
    assert auditor is not None
    auditor.close()
