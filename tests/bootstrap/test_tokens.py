"""Bootstrap token Secrets, `token list` output and the bootstrap signer's choice of signatures."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from kubelite.bootstrap import jws
from kubelite.bootstrap.tokens import (
    TokenError,
    format_token_list,
    generate_token,
    parse_token,
    token_info,
    token_secret,
)
from kubelite.controllers.bootstrapsigner import signed_data, signing_tokens


def _decode(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_generated_tokens_are_well_formed_and_random():
    tokens = {generate_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t) for t in tokens)


@pytest.mark.parametrize("text", ["", "abcdef", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef",
                                  "abcdef:0123456789abcdef", "abcdef.0123456789abcdef0"])
def test_malformed_tokens(text):
    with pytest.raises(TokenError, match=r'was not of the form "\[a-z0-9\]\{6\}.\[a-z0-9\]\{16\}"'):
        parse_token(text)


def test_token_secret_as_kubeadm_writes_it():
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    s = token_secret("abcdef.0123456789abcdef", 7200, description="for node01", now=now)
    assert s["type"] == "bootstrap.kubernetes.io/token"
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert _decode(s, "token-id") == "abcdef"
    assert _decode(s, "token-secret") == "0123456789abcdef"
    assert _decode(s, "expiration") == "2025-01-02T05:04:05Z"
    assert _decode(s, "usage-bootstrap-authentication") == "true"
    assert _decode(s, "usage-bootstrap-signing") == "true"
    assert _decode(s, "auth-extra-groups") == "system:bootstrappers:kubeadm:default-node-token"
    assert "expiration" not in token_secret("abcdef.0123456789abcdef", 0)["data"]


def test_token_list_table():
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    forever = token_info(token_secret("aaaaaa.0123456789abcdef", 0))
    soon = token_info(token_secret("bbbbbb.0123456789abcdef", 7200, description="two hours", now=now))
    lines = format_token_list([forever, soon], now).splitlines()
    assert lines[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    assert lines[1].split() == ["aaaaaa.0123456789abcdef", "<forever>", "<never>", "authentication,signing",
                                "<none>", "system:bootstrappers:kubeadm:default-node-token"]
    assert lines[2].split()[:4] == ["bbbbbb.0123456789abcdef", "2h", "2025-01-02T05:04:05Z", "authentication,signing"]
    assert token_info({"type": "Opaque", "data": {}}) is None


def test_signer_signs_with_valid_signing_tokens_only():
    now = datetime.now(UTC)
    good = token_secret("aaaaaa.0123456789abcdef", 3600)
    expired = token_secret("bbbbbb.0123456789abcdef", 3600, now=now - timedelta(hours=2))
    auth_only = token_secret("cccccc.0123456789abcdef", 3600, usages=("authentication",))
    misnamed = token_secret("dddddd.0123456789abcdef", 3600)
    misnamed["metadata"]["name"] = "bootstrap-token-eeeeee"
    deleting = token_secret("ffffff.0123456789abcdef", 3600)
    deleting["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert signing_tokens([good, expired, auth_only, misnamed, deleting]) == {"aaaaaa": "0123456789abcdef"}


def test_signed_data_keeps_valid_signatures_and_drops_stale_ones():
    content = "apiVersion: v1\n"
    valid = jws.compute_detached_signature(content, "aaaaaa", "0123456789abcdef")
    data = {"kubeconfig": content, "jws-kubeconfig-aaaaaa": valid, "jws-kubeconfig-gone00": "x..y",
            "other": "kept"}
    out = signed_data(data, {"aaaaaa": "0123456789abcdef", "bbbbbb": "fedcba9876543210"})
    assert out == {"kubeconfig": content, "other": "kept", "jws-kubeconfig-aaaaaa": valid,
                   "jws-kubeconfig-bbbbbb": jws.compute_detached_signature(content, "bbbbbb", "fedcba9876543210")}
    # a signature over an older kubeconfig is replaced
    data["kubeconfig"] = "apiVersion: v1\nkind: Config\n"
    assert signed_data(data, {"aaaaaa": "0123456789abcdef"})["jws-kubeconfig-aaaaaa"] != valid
    # nothing to sign without a kubeconfig
    assert signed_data({"jws-kubeconfig-aaaaaa": valid}, {"aaaaaa": "0123456789abcdef"}) == {}
