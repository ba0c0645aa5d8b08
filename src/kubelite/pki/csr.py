"""PKCS#10 certificate requests: making them (a joining node), checking them (the API server, the approver)
and signing them with the cluster CA (the csrsigning controller), by the rules of upstream's signers.

`spec.usages` strings are upstream's `KeyUsage` values ("digital signature", "client auth", ...).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from kubelite.pki import certs

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"

# usage -> KeyUsage field it turns on
KEY_USAGES: dict[str, str] = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
EXT_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}
KNOWN_USAGES: tuple[str, ...] = (*KEY_USAGES, *EXT_KEY_USAGES)

KUBELET_CLIENT_USAGES = ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"})
KUBELET_SERVING_USAGES = ({"digital signature", "key encipherment", "server auth"}, {"digital signature", "server auth"})

BACKDATE = dt.timedelta(minutes=5)
MIN_DURATION = dt.timedelta(minutes=10)


def parse_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """The request in `pem`, its self-signature checked; ValueError with upstream's wording otherwise."""
    text = pem.lstrip()
    if not text.startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(text)
    except ValueError as e:
        raise ValueError(f"x509: malformed certificate request: {e}") from None
    if not csr.is_signature_valid:
        raise ValueError("x509: ECDSA verification failure")
    return csr


def make_csr(key: ec.EllipticCurvePrivateKey, cn: str, orgs: Iterable[str] = (),
             dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = ()) -> bytes:
    """A PEM certificate request for `cn` in `orgs`, signed by `key`."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    general: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    general += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def subject(csr: x509.CertificateSigningRequest | x509.Certificate) -> tuple[str, list[str]]:
    """(common name, organizations) of a request or certificate."""
    cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cn[0]) if cn else ""), [str(o) for o in orgs]


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _san_problem(csr: x509.CertificateSigningRequest, allow_dns_ip: bool) -> str:
    sans = _sans(csr)
    if sans is None:
        return ""
    if not allow_dns_ip and sans.get_values_for_type(x509.DNSName):
        return "DNS subjectAltNames are not allowed"
    if sans.get_values_for_type(x509.RFC822Name):
        return "Email subjectAltNames are not allowed"
    if not allow_dns_ip and sans.get_values_for_type(x509.IPAddress):
        return "IP subjectAltNames are not allowed"
    if sans.get_values_for_type(x509.UniformResourceIdentifier):
        return "URI subjectAltNames are not allowed"
    return ""


def _go_list(values: Iterable[str]) -> str:
    return "[" + " ".join(sorted(values)) + "]"


def kubelet_client_problem(csr: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    """Why the request is not a kubelet client certificate request ("" if it is), as upstream words it."""
    cn, orgs = subject(csr)
    if orgs != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    problem = _san_problem(csr, allow_dns_ip=False)
    if problem:
        return problem
    if not cn.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if set(usages) not in KUBELET_CLIENT_USAGES:
        return f"usages did not match {_go_list(KUBELET_CLIENT_USAGES[0])}"
    return ""


def kubelet_serving_problem(csr: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    cn, orgs = subject(csr)
    if orgs != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    sans = _sans(csr)
    if sans is None or not (sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)):
        return "DNS or IP subjectAltName is required"
    problem = _san_problem(csr, allow_dns_ip=True)
    if problem:
        return problem
    if set(usages) not in KUBELET_SERVING_USAGES:
        return f"usages did not match {_go_list(KUBELET_SERVING_USAGES[0])}"
    if not cn.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    return ""


def apiserver_client_problem(csr: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    client_auth = False
    for u in usages:
        if u in ("digital signature", "key encipherment"):
            continue
        if u == "client auth":
            client_auth = True
            continue
        return f"invalid usage for client certificate: {u}"
    if not client_auth:
        return "missing required usage for client certificate: client auth"
    return ""


# signer -> the check a request for it must pass before it is signed
SIGNER_CHECKS = {
    KUBE_APISERVER_CLIENT: apiserver_client_problem,
    KUBE_APISERVER_CLIENT_KUBELET: kubelet_client_problem,
    KUBELET_SERVING: kubelet_serving_problem,
}


def signing_duration(expiration_seconds: int | None, max_duration: dt.timedelta) -> dt.timedelta:
    """The requested lifetime, within [10 min, max_duration] (upstream's signer.duration)."""
    if expiration_seconds is None:
        return max_duration
    wanted = dt.timedelta(seconds=int(expiration_seconds))
    if wanted > max_duration:
        return max_duration
    return max(wanted, MIN_DURATION)


def sign_csr(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, csr: x509.CertificateSigningRequest,
             usages: Iterable[str], duration: dt.timedelta, now: dt.datetime | None = None) -> bytes:
    """A PEM certificate for the request's subject, key and subjectAltNames, with the given usages."""
    now = now or dt.datetime.now(dt.UTC)
    usages = list(usages)
    not_after = min(now + duration, ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    flags = {name: False for name in set(KEY_USAGES.values())}
    for u in usages:
        if u in KEY_USAGES:
            flags[KEY_USAGES[u]] = True
    if any(flags.values()):
        if not flags["key_agreement"]:
            flags["encipher_only"] = flags["decipher_only"] = False
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ekus: list[ObjectIdentifier] = []
    for u in usages:
        oid = EXT_KEY_USAGES.get(u)
        if oid is not None and oid not in ekus:
            ekus.append(oid)
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    sans = _sans(csr)
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    return certs.cert_to_pem(builder.sign(ca_key, hashes.SHA256()))
