"""What `kcli cluster start --secure` sets up: a CA and a broker certificate, an admin
SCRAM user and the broker settings for SASL_SSL, SCRAM-SHA-512 and ACLs.

Everything lives in ``DATA_DIR/security`` (0700, files 0600): the CA certificate (the
one file clients need), the broker's PEM keystore, the admin password and the broker
settings that hold it (given to brokers with --config-file, so that ``ps`` never shows
it). The admin user is written into the cluster metadata before the first broker starts,
as ``kafka-storage format --add-scram`` does; brokers log in to each other as admin,
a super user.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from kcli.durable import make_private_dir, write_atomically
from kcli.errors import OperationFailed

ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_VALID_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class SecureFiles:
    """The files of a secured local cluster."""

    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust (PEM)."""
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The brokers' certificate and key (PEM)."""
        return self.directory / "broker.pem"

    @property
    def password_file(self) -> Path:
        """The admin password."""
        return self.directory / "admin.password"

    @property
    def properties(self) -> Path:
        """Broker settings with the admin login (server.properties)."""
        return self.directory / "broker.properties"

    @property
    def client_config(self) -> Path:
        """The admin's client settings (.properties), for the Schema Registry process."""
        return self.directory / "client.properties"

    @property
    def password(self) -> str:
        """The admin password."""
        return self.password_file.read_text(encoding="utf-8").strip()

    def client_properties(self) -> dict[str, str]:
        """librdkafka settings of an admin client (for the generated profile)."""
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": MECHANISM,
                "sasl.username": ADMIN, "sasl.password": self.password,
                "ssl.ca.location": str(self.ca)}


def files_for(data_dir: Path) -> SecureFiles:
    """Where a cluster's security files are (whether or not they exist)."""
    return SecureFiles(data_dir / "security")


def prepare(data_dir: Path) -> SecureFiles:
    """Create what is missing: CA, broker certificate, admin password, settings."""
    files = files_for(data_dir)
    make_private_dir(files.directory)
    if not files.ca.exists() or not files.keystore.exists():
        ca, keystore = _certificates()
        write_atomically(files.ca, ca)
        write_atomically(files.keystore, keystore)
    if not files.password_file.exists():
        write_atomically(files.password_file, secrets.token_urlsafe(24).encode() + b"\n")
    from kcli.broker.properties import format_properties

    jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{files.password}";')
    write_atomically(files.properties, format_properties({
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.location": str(files.ca),
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
        "authorizer.class.name": _AUTHORIZER,
        "super.users": f"User:{ADMIN}",
    }).encode())
    write_atomically(files.client_config,
                     format_properties(files.client_properties()).encode())
    return files


def seed_admin(cluster_dir: Path, files: SecureFiles) -> None:
    """Put the admin's SCRAM credential into the cluster metadata, creating the metadata
    of a new cluster; a cluster created without --secure is refused."""
    from kcli.broker.cluster.metadata import ClusterMetadata, MetadataStore, new_cluster_id
    from kcli.broker.security.scram import make_credential

    store = MetadataStore(cluster_dir)
    with store.locked():
        metadata = store.load()
        if metadata is None:
            metadata = ClusterMetadata(new_cluster_id())
        elif ADMIN not in metadata.scram:
            raise OperationFailed("this cluster was created without --secure; purge it to "
                                  "start it secured (kcli cluster purge)")
        else:
            return
        metadata.scram[ADMIN] = {MECHANISM: make_credential(MECHANISM,
                                                            files.password).to_json()}
        store.save(metadata)


def client_context(files: SecureFiles) -> ssl.SSLContext:
    """A TLS context that trusts the cluster's CA (the supervisor's readiness probe)."""
    return ssl.create_default_context(cafile=str(files.ca))


def _certificates() -> tuple[bytes, bytes]:
    """A new CA certificate, and a broker certificate and key it signed, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kcli local cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    broker = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    keystore = broker.public_bytes(pem) + key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), keystore
