"""TLS material for the local stack: a private CA and a server certificate for loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from iotnotify.errors import LocalStackError
from iotnotify.files import Unsafe, check_private_folder, read_private, write_private


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files the local broker serves and clients trust."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_tls_files(folder: Path) -> TlsFiles:
    """Return the CA and server certificate in `folder`, generating them on first use;
    LocalStackError if `folder` is not the user's alone (files.py: someone else's CA there would be
    trusted by every client of the `local` profile)."""
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    try:
        check_private_folder(folder, create=True)
        if all(p.is_file() and p.stat().st_size > 0 for p in (files.ca_file, files.cert_file, files.key_file)):
            for path in (files.ca_file, files.cert_file, files.key_file):
                read_private(path)
            return files
    except Unsafe as e:
        raise LocalStackError(f"{e}: remove it, or use another state folder (XDG_STATE_HOME)") from None
    ca_pem, cert_pem, key_pem = _generate()
    write_private(files.key_file, key_pem, strict=True)
    write_private(files.cert_file, cert_pem, strict=True)
    write_private(files.ca_file, ca_pem, strict=True)
    files.ca_file.chmod(0o644)  # the CA and certificate are public; the key stays 0600
    files.cert_file.chmod(0o644)
    return files


def _generate() -> tuple[bytes, bytes, bytes]:
    """Create a CA and a server certificate for localhost, 127.0.0.1 and ::1 (PEM bytes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iotnotify local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), key_pem
