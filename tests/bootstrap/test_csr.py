"""CSR checks, signing, the API server's CSR rules, the approver's recognizers and the CSR table row."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubelite.api.printers import PRINTERS
from kubelite.api.resources import Registry
from kubelite.apiserver.certificates import CSRStrategy, validate_csr
from kubelite.controllers.csr import NODE_CLIENT, SELF_NODE_CLIENT, is_stale, recognize
from kubelite.pki import certs
from kubelite.pki import csr as pkicsr

CSR_RT = Registry().get("certificates.k8s.io", "v1", "certificatesigningrequests")
CLIENT = ["digital signature", "client auth"]


def _request(cn="system:node:node01", orgs=("system:nodes",), dns=(), ips=()) -> x509.CertificateSigningRequest:
    return pkicsr.parse_csr(pkicsr.make_csr(certs.new_key(), cn, orgs, dns, ips))


def _obj(request_pem: bytes, signer=pkicsr.KUBE_APISERVER_CLIENT_KUBELET, usages=CLIENT, **spec) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-1", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": signer,
                     "usages": list(usages), **spec}}


def test_parse_rejects_non_csr_and_bad_signature():
    with pytest.raises(ValueError, match="PEM block type must be CERTIFICATE REQUEST"):
        pkicsr.parse_csr(b"-----BEGIN CERTIFICATE-----\n")
    pem = pkicsr.make_csr(certs.new_key(), "x")
    with pytest.raises(ValueError):
        pkicsr.parse_csr(pem.replace(b"\n", b"\n", 1)[:-40] + b"AAAA\n-----END CERTIFICATE REQUEST-----\n")


@pytest.mark.parametrize("kwargs, usages, problem", [
    ({}, CLIENT, ""),
    ({}, ["digital signature", "key encipherment", "client auth"], ""),
    ({"orgs": ("system:masters",)}, CLIENT, "subject organization is not system:nodes"),
    ({"orgs": ("system:nodes", "x")}, CLIENT, "subject organization is not system:nodes"),
    ({"cn": "node01"}, CLIENT, "subject common name does not begin with system:node:"),
    ({"dns": ("node01",)}, CLIENT, "DNS subjectAltNames are not allowed"),
    ({"ips": ("10.0.0.1",)}, CLIENT, "IP subjectAltNames are not allowed"),
    ({}, ["client auth"], "usages did not match [client auth digital signature key encipherment]"),
    ({}, ["digital signature", "client auth", "server auth"], "usages did not match"),
])
def test_kubelet_client_checks(kwargs, usages, problem):
    got = pkicsr.kubelet_client_problem(_request(**kwargs), usages)
    assert got.startswith(problem) if problem else got == ""


def test_kubelet_serving_and_apiserver_client_checks():
    serving = ["digital signature", "server auth"]
    assert pkicsr.kubelet_serving_problem(_request(dns=("node01",)), serving) == ""
    assert pkicsr.kubelet_serving_problem(_request(), serving) == "DNS or IP subjectAltName is required"
    assert pkicsr.apiserver_client_problem(_request(cn="alice", orgs=()), ["client auth"]) == ""
    assert pkicsr.apiserver_client_problem(_request(), ["server auth", "client auth"]) == \
        "invalid usage for client certificate: server auth"
    assert pkicsr.apiserver_client_problem(_request(), ["digital signature"]) == \
        "missing required usage for client certificate: client auth"


def test_sign_csr():
    ca_cert, ca_key = certs.make_ca()
    request = _request(dns=("node01.example",), ips=("10.0.0.7",))
    now = dt.datetime.now(dt.UTC)
    cert = certs.load_cert(pkicsr.sign_csr(ca_cert, ca_key, request, ["digital signature", "server auth"],
                                           dt.timedelta(hours=1), now))
    assert certs.issued_by(cert, ca_cert)
    assert pkicsr.subject(cert) == ("system:node:node01", ["system:nodes"])
    assert cert.public_key() == request.public_key()
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    assert certs.cert_sans(cert)[0] == {"node01.example"}
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(minutes=64) <= lifetime <= dt.timedelta(minutes=66)  # 1 h + 5 min backdate


def test_signing_duration_bounds():
    year = dt.timedelta(days=365)
    assert pkicsr.signing_duration(None, year) == year
    assert pkicsr.signing_duration(3600, year) == dt.timedelta(hours=1)
    assert pkicsr.signing_duration(10 ** 9, year) == year
    assert pkicsr.signing_duration(60, year) == dt.timedelta(minutes=10)


def test_validate_csr_create():
    pem = pkicsr.make_csr(certs.new_key(), "system:node:n1", ["system:nodes"])
    assert validate_csr(_obj(pem)) == []
    causes = validate_csr(_obj(b"junk", signer="", usages=[], expirationSeconds=60))
    fields = {c["field"]: c["message"] for c in causes}
    assert fields["spec.request"].endswith("PEM block type must be CERTIFICATE REQUEST")
    assert fields["spec.signerName"] == "Required value"
    assert fields["spec.usages"] == "Required value"
    assert "may not specify a duration less than 600 seconds" in fields["spec.expirationSeconds"]
    bad = validate_csr(_obj(pem, signer="no-slash", usages=["client auth", "bogus", "client auth"]))
    assert [c["type"] for c in bad] == ["FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate"]


def test_validate_conditions():
    pem = pkicsr.make_csr(certs.new_key(), "x")
    obj = _obj(pem)
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}
    assert any("mutually exclusive" in c["message"] for c in validate_csr(obj))
    old = _obj(pem)
    old["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    new = _obj(pem)
    new["status"] = {"conditions": []}
    assert any('may not remove a condition of type "Approved"' in c["message"] for c in validate_csr(new, old))


def _stored(pem: bytes) -> dict:
    old = _obj(pem)
    old["metadata"].update(uid="u1", resourceVersion="5")
    old["spec"]["username"] = "system:bootstrap:abcdef"
    old["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
                                     "lastUpdateTime": "2025-01-01T00:00:00Z",
                                     "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    return old


def test_strategy_keeps_spec_and_approval_apart():
    pem = pkicsr.make_csr(certs.new_key(), "system:node:n1", ["system:nodes"])
    strategy = CSRStrategy()
    # the main resource: spec and status are not writable
    new = _stored(pem)
    new["spec"]["username"] = "someone-else"
    new["status"] = {}
    strategy.prepare_for_update(CSR_RT, new, _stored(pem), "")
    assert new["spec"]["username"] == "system:bootstrap:abcdef"
    assert new["status"]["conditions"][0]["type"] == "Approved"
    # /status: the certificate is taken, approval conditions are not
    new = _stored(pem)
    new["status"] = {"certificate": "Y2VydA==", "conditions": [{"type": "Denied", "status": "True"},
                                                              {"type": "Failed", "status": "True"}]}
    strategy.prepare_for_update(CSR_RT, new, _stored(pem), "status")
    assert new["status"]["certificate"] == "Y2VydA=="
    assert [c["type"] for c in new["status"]["conditions"]] == ["Approved", "Failed"]
    assert new["status"]["conditions"][1]["lastTransitionTime"]
    # /approval: conditions are taken, the certificate is not
    old = _stored(pem)
    old["status"] = {}
    new = _stored(pem)
    new["status"] = {"certificate": "Y2VydA==", "conditions": [{"type": "Denied", "status": "True"}]}
    strategy.prepare_for_update(CSR_RT, new, old, "approval")
    assert "certificate" not in new["status"]
    assert [c["type"] for c in new["status"]["conditions"]] == ["Denied"]


def test_approver_recognizers():
    request = _request()
    pem = pkicsr.make_csr(certs.new_key(), "system:node:node01", ["system:nodes"])
    bootstrap = _obj(pem, username="system:bootstrap:abcdef")
    assert recognize(bootstrap, request) == [NODE_CLIENT]
    renewing = _obj(pem, username="system:node:node01")
    assert recognize(renewing, request) == [SELF_NODE_CLIENT, NODE_CLIENT]
    assert recognize(_obj(pem, signer=pkicsr.KUBE_APISERVER_CLIENT), request) == []
    assert recognize(_obj(pem, usages=["client auth", "server auth"]), request) == []


def test_cleaner_ages():
    now = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    pem = pkicsr.make_csr(certs.new_key(), "x")
    pending = _obj(pem)
    assert is_stale(pending, now + dt.timedelta(minutes=1))  # created over a day ago
    assert not is_stale(pending, now - dt.timedelta(hours=2))
    approved = _obj(pem)
    approved["status"] = {"conditions": [{"type": "Approved", "status": "True",
                                          "lastUpdateTime": "2025-01-01T23:30:00Z"}]}
    assert not is_stale(approved, now)
    assert is_stale(approved, now + dt.timedelta(hours=1))


def test_table_row():
    printer = PRINTERS[("certificates.k8s.io", "CertificateSigningRequest")]
    assert [c.name for c in printer.columns] == ["Name", "Age", "SignerName", "Requestor", "RequestedDuration",
                                                 "Condition"]
    pem = pkicsr.make_csr(certs.new_key(), "x")
    obj = _obj(pem, username="system:bootstrap:abcdef", expirationSeconds=86400)
    obj["status"] = {"certificate": "eA==", "conditions": [{"type": "Approved", "status": "True"}]}
    now = dt.datetime(2025, 1, 1, 0, 5, tzinfo=dt.UTC)
    assert printer.row(obj, now) == ["csr-1", "5m", pkicsr.KUBE_APISERVER_CLIENT_KUBELET, "system:bootstrap:abcdef",
                                     "24h", "Approved,Issued"]
    obj["status"] = {"conditions": [{"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}]}
    del obj["spec"]["expirationSeconds"]
    assert printer.row(obj, now)[4:] == ["<none>", "Denied,Failed"]
