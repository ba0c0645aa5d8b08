"""The lease endpoint reconciler's rule: the `kubernetes` endpoints are the addresses of the fresh leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubelite.apiserver import endpoint_reconciler as er


def _lease(address: str, renewed: datetime, duration: int = 15, label: str = er.IDENTITY) -> dict:
    return {"metadata": {"name": er.lease_name(address, 6443), "labels": {er.IDENTITY_LABEL: label},
                         "annotations": {er.ADDRESS_ANNOTATION: address}},
            "spec": {"leaseDurationSeconds": duration, "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_only_fresh_leases_count_sorted():
    now = datetime.now(UTC)
    leases = [_lease("10.0.0.12", now - timedelta(seconds=2)), _lease("10.0.0.9", now),
              _lease("10.0.0.11", now - timedelta(seconds=30)),  # expired: its server died
              _lease("10.0.0.13", now, label="other")]  # not an API server's
    assert er.live_addresses(leases, now) == ["10.0.0.9", "10.0.0.12"]


def test_subsets_and_names():
    assert er.endpoints_subsets([], 6443) == []
    assert er.endpoints_subsets(["10.0.0.1"], 6443) == [
        {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    assert er.lease_name("10.0.0.1", 6443).startswith("apiserver-")
    assert er.lease_name("10.0.0.1", 6443) != er.lease_name("10.0.0.2", 6443)
