"""The container log rotation rule (kubelet.logrotation), on plain files with a fake reopen."""

from __future__ import annotations

import asyncio
import gzip
import os
import time

import pytest

from kubelite.kubelet.logrotation import (
    LogRotatePolicy,
    all_logs,
    excess,
    is_in_use,
    needs_rotation,
    parse_max_size,
    remove_logs,
    rotate_log,
    rotated_name,
)


def test_parse_policy():
    assert parse_max_size("10Mi") == 10 * 1024 * 1024
    assert parse_max_size("1k") == 1000
    assert parse_max_size("200") == 200
    assert LogRotatePolicy.parse() == LogRotatePolicy(10 * 1024 * 1024, 5)
    assert not LogRotatePolicy.parse("-1", 5).enabled
    with pytest.raises(ValueError, match="must be > 1"):
        LogRotatePolicy.parse("10Mi", 1)
    with pytest.raises(ValueError, match='failed to parse container log max size "ten"'):
        parse_max_size("ten")


def test_in_use_and_excess():
    logs = ["0.log.20240101-000000.gz", "0.log.20240101-000001", "0.log.20240101-000001.gz",
            "0.log.20240101-000002.tmp", "0.log.20240101-000003"]
    assert [p for p in logs if is_in_use(p, logs)] == ["0.log.20240101-000000.gz", "0.log.20240101-000001.gz",
                                                        "0.log.20240101-000003"]
    # max files 5: the current file and the one being rotated, plus 3 rotated ones
    remove, keep = excess(["c", "a", "d", "b"], 5)
    assert (remove, keep) == (["a"], ["b", "c", "d"])
    assert excess(["a"], 2) == (["a"], [])


def test_rotated_name_is_local_time():
    when = time.mktime((2024, 3, 9, 17, 5, 42, 0, 0, -1))
    assert rotated_name("/x/0.log", when) == "/x/0.log.20240309-170542"


def test_rotation_rule(tmp_path):
    path = str(tmp_path / "0.log")
    policy = LogRotatePolicy(max_size=10, max_files=3)
    reopened = []

    async def reopen():
        reopened.append(1)
        with open(path, "w") as f:  # the runtime writes a fresh file
            f.write("")

    def write(text: str) -> None:
        with open(path, "a") as f:
            f.write(text)

    write("short\n")
    assert not needs_rotation(path, policy)
    write("a longer line\n")
    assert needs_rotation(path, policy)
    first = asyncio.run(rotate_log(path, policy, reopen, now=1_700_000_000))
    assert first == rotated_name(path, 1_700_000_000)
    with open(first) as f:
        assert f.read() == "short\na longer line\n"  # the newest rotated file stays plain
    assert os.path.getsize(path) == 0 and reopened == [1]
    write("second file!\n")
    second = asyncio.run(rotate_log(path, policy, reopen, now=1_700_000_100))
    # the older one got compressed; max files 3 keeps one rotated file besides the newest
    assert sorted(os.listdir(tmp_path)) == sorted(["0.log", os.path.basename(first) + ".gz",
                                                   os.path.basename(second)])
    with gzip.open(first + ".gz", "rt") as f:
        assert f.read() == "short\na longer line\n"
    write("third file!!\n")
    third = asyncio.run(rotate_log(path, policy, reopen, now=1_700_000_200))
    assert sorted(os.listdir(tmp_path)) == sorted(["0.log", os.path.basename(second) + ".gz",
                                                   os.path.basename(third)])
    assert all_logs(path) == [second + ".gz", third, path]
    # leftovers of an interrupted rotation are cleaned up on the next one
    open(third + ".gz.tmp", "w").close()
    write("fourth file!\n")
    asyncio.run(rotate_log(path, policy, reopen, now=1_700_000_300))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    remove_logs(path)
    assert os.listdir(tmp_path) == []


def test_failed_reopen_puts_the_file_back(tmp_path):
    path = str(tmp_path / "0.log")
    with open(path, "w") as f:
        f.write("x" * 20)

    async def reopen():
        raise OSError("conmon is gone")

    with pytest.raises(OSError):
        asyncio.run(rotate_log(path, LogRotatePolicy(10, 5), reopen))
    assert os.listdir(tmp_path) == ["0.log"]
