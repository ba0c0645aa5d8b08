"""Deciding ATTACK SUCCEEDED / BLOCKED from real output, never assuming."""

from __future__ import annotations

import pytest

from kubelite.lab.decide import (
    BLOCKED,
    ERROR,
    SUCCEEDED,
    Result,
    capture,
    matches,
    step_outcome,
    substitute,
    verdict,
)


def test_matches_every_part_of_a_signal():
    r = Result(output="HTTP 200\n{\"items\":[\"cloud-credentials\"]}", status=200)
    assert matches({"status": 200, "contains": "cloud-credentials"}, r)
    assert not matches({"status": 200, "contains": ["cloud-credentials", "other"]}, r)
    assert matches({"status": [401, 200]}, r)
    assert not matches({"status": 401}, r)
    assert matches({"regex": r"^HTTP 2\d\d$"}, r)
    assert not matches({"not_contains": "cloud"}, r)
    assert not matches({}, r)  # an empty signal matches nothing


def test_exit_codes():
    assert matches({"exit": 0}, Result("", exit=0))
    assert matches({"exit": "nonzero"}, Result("", exit=1))
    assert not matches({"exit": "nonzero"}, Result("", exit=0))


@pytest.mark.parametrize("output, status, want", [
    ("HTTP 200 secret", 200, SUCCEEDED),
    ("HTTP 403 Forbidden", 403, BLOCKED),
    ("HTTP 401 Unauthorized", 401, BLOCKED),
    ("HTTP 500 boom", 500, ERROR),  # neither signal: not counted as a block
    ("curl: (7) Failed to connect", 0, ERROR),
])
def test_step_outcome(output, status, want):
    assert step_outcome({"status": 200, "contains": "secret"}, {"status": [401, 403]},
                        Result(output, status=status)) == want


def test_a_gathering_step_goes_on_unless_blocked():
    assert step_outcome({}, {"status": 401}, Result("HTTP 200", status=200)) == SUCCEEDED
    assert step_outcome({}, {"status": 401}, Result("HTTP 401", status=401)) == BLOCKED


def test_verdict_is_the_first_step_that_did_not_go_the_attackers_way():
    assert verdict([SUCCEEDED, SUCCEEDED]) == SUCCEEDED
    assert verdict([SUCCEEDED, BLOCKED]) == BLOCKED
    assert verdict([ERROR, BLOCKED]) == ERROR
    assert verdict([]) == ERROR


def test_capture_and_substitute():
    got = capture({"token": r"^(eyJ\S+)", "missing": "nope(\\d)"}, "noise\neyJhbGciOi.abc.def\n")
    assert got == {"token": "eyJhbGciOi.abc.def"}
    assert substitute({"a": ["x ${port}", 3]}, {"port": "6443"}) == {"a": ["x 6443", 3]}
    with pytest.raises(KeyError):
        substitute("${nope}", {})


def test_kubelet_args_parse_and_refuse():
    from kubelite.kubelet.kubelet_args import parse_kubelet_args

    a = parse_kubelet_args(["anonymous-auth=true", "authorization-mode=AlwaysAllow", "read-only-port=10255",
                            "address=127.0.0.1"])
    assert (a.anonymous_auth, a.authorization_mode, a.read_only_port, a.address) == \
        (True, "AlwaysAllow", 10255, "127.0.0.1")
    d = parse_kubelet_args([])
    assert (d.anonymous_auth, d.authorization_mode, d.read_only_port) == (False, "Webhook", 0)
    for bad in ("anonymous-auth=yes", "authorization-mode=RBAC", "read-only-port=x", "nope=1", "address"):
        with pytest.raises(ValueError):
            parse_kubelet_args([bad])
