"""The kubelet's self-signed serving certificate (upstream's default without --tls-cert-file).

Made with cryptography, which the node agent should not keep loaded (~8 MiB resident for one certificate
at start-up): `server.self_signed_context` runs this module as a short-lived child process

    python -m kubelite.kubelet.selfsigned NODE_NAME CERT_PATH KEY_PATH [IP ...]

unless cryptography is in the process anyway (`kubelite up` with the API server).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import sys
import time


def write_self_signed(node_name: str, ips: list[str], cert_path: str, key_path: str) -> None:
    """A P-256 key and a one-year certificate for `node_name` and `ips`, signed by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@{int(time.time())}")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(node_name)]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips if i]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python -m kubelite.kubelet.selfsigned NODE_NAME CERT_PATH KEY_PATH [IP ...]")
    write_self_signed(sys.argv[1], sys.argv[4:], sys.argv[2], sys.argv[3])
