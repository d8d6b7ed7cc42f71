"""A throwaway certificate authority, a server certificate for 127.0.0.1/localhost and
client certificates, written as PEM files, for tests that speak TLS."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificates:
    """PEM paths: the CA's certificate (and key), the server's certificate and key, and
    both in one file (a broker's ``ssl.keystore.location``)."""

    ca: Path
    certificate: Path
    key: Path
    keystore: Path
    ca_key: Path

    def client(self, common_name: str, expired: bool = False) -> tuple[Path, Path]:
        """A client certificate signed by the CA, subject ``CN=<common_name>,O=kcli``
        (valid for a day, or ``expired`` yesterday): (certificate, key) paths."""
        ca = x509.load_pem_x509_certificate(self.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kcli"),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = _signed(x509.CertificateBuilder().subject_name(subject), ca.subject,
                              key, ca_key, days=-1 if expired else 1)
        paths = (self.ca.parent / f"{common_name}.pem", self.ca.parent / f"{common_name}.key")
        paths[0].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        paths[1].write_bytes(_private(key))
        return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _signed(builder: x509.CertificateBuilder, issuer: x509.Name,
            key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey,
            days: int = 1) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (builder.issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(signer, hashes.SHA256()))


def _private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(directory: Path) -> Certificates:
    """A new CA and a server certificate it signed, valid for a day."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _signed(x509.CertificateBuilder().subject_name(_name("kcli test CA"))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                critical=True), _name("kcli test CA"), ca_key, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = _signed(x509.CertificateBuilder().subject_name(_name("localhost"))
                          .add_extension(x509.SubjectAlternativeName(names), critical=False),
                          ca.subject, key, ca_key)
    paths = Certificates(directory / "ca.pem", directory / "server.pem",
                         directory / "server.key", directory / "server-keystore.pem",
                         directory / "ca.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.ca_key.write_bytes(_private(ca_key))
    paths.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(_private(key))
    paths.keystore.write_bytes(paths.certificate.read_bytes() + paths.key.read_bytes())
    return paths
