"""One node with real containers per network namespace (profiles/lock.py)."""

import os
import shutil
import subprocess
import sys

import pytest

from kubelite.profiles import lock

HOLD = """
import sys, time
from kubelite.profiles import lock
try:
    lock.acquire(sys.argv[2], "up", lock_dir=sys.argv[1])
except lock.NodeLockError as e:
    print("REFUSED", e, flush=True)
    sys.exit(3)
print("HELD", flush=True)
time.sleep(30)
"""


def _hold(lock_dir, data_dir, *prefix):
    return subprocess.Popen([*prefix, sys.executable, "-c", HOLD, str(lock_dir), str(data_dir)],
                            stdout=subprocess.PIPE, text=True)


def test_a_second_node_in_one_network_namespace_is_refused(tmp_path):
    first = _hold(tmp_path, "/data/one")
    try:
        assert first.stdout.readline().strip() == "HELD"
        assert lock.holder_pid(str(tmp_path)) == first.pid
        second = _hold(tmp_path, "/data/two")
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 3
        assert "REFUSED" in out and f"pid {first.pid}" in out and "/data/one" in out
        assert "network namespace" in out and "kubelite0" in out
    finally:
        first.kill()
        first.wait()
    assert lock.holder_pid(str(tmp_path)) is None  # a dead holder frees it
    third = _hold(tmp_path, "/data/three")
    try:
        assert third.stdout.readline().strip() == "HELD"
    finally:
        third.kill()
        third.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a network namespace")
def test_another_network_namespace_is_another_machine(tmp_path):
    first = _hold(tmp_path, "/data/one")
    second = _hold(tmp_path, "/data/two", "unshare", "--net")
    try:
        assert first.stdout.readline().strip() == "HELD"
        assert second.stdout.readline().strip() == "HELD"
    finally:
        for p in (first, second):
            p.kill()
            p.wait()
