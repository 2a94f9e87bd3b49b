"""Key pairs: SSH public keys (or x509 certificates) a user injects into servers.

Key pairs belong to a user, not a project. Cirrus generates RSA 2048 keys with the
`cryptography` library and returns the private key once, at creation; it keeps only the
public half. Fingerprints are MD5 in colon form for SSH keys, as `ssh-keygen -E md5` shows
them, and SHA-1 for x509 certificates, as Nova computes them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import KeyPair
from cirrus.errors import BadRequest, Conflict, NotFound

from . import quotas

SSH, X509 = "ssh", "x509"
KEY_BITS = 2048


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_fingerprint(public_key: str) -> str:
    """The MD5 fingerprint of an OpenSSH public key line; BadRequest if it is not one."""
    try:
        serialization.load_ssh_public_key(public_key.strip().encode("utf-8"))
        blob = base64.b64decode(public_key.strip().split()[1], validate=True)
    except (ValueError, IndexError, binascii.Error, UnicodeError):
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    except Exception:  # the library raises its own types for unsupported key kinds
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(pem: str) -> str:
    """The SHA-1 fingerprint of a PEM certificate; BadRequest if it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise BadRequest("Keypair data is invalid: failed to generate X509 fingerprint. "
                         f"Error message: {exc}") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()))


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == X509 else ssh_fingerprint(public_key)


def generate_ssh() -> tuple[str, str, str]:
    """A new RSA key: (private key PEM, OpenSSH public key line, fingerprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode("ascii")
    public = f"{public} Generated-by-Cirrus"
    return private, public, ssh_fingerprint(public)


def generate_x509(user_id: str) -> tuple[str, str, str]:
    """A self-signed client certificate for WinRM logins, as Nova makes them.

    Returns (base64 PKCS#12 bundle with the private key, certificate PEM, fingerprint).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"),
                         _der_utf8(f"{user_id}@localhost"))
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([upn]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    bundle = pkcs12.serialize_key_and_certificates(None, key, cert, None,
                                                   serialization.NoEncryption())
    return base64.b64encode(bundle).decode("ascii"), pem, x509_fingerprint(pem)


def _der_utf8(text: str) -> bytes:
    """DER encoding of a UTF8String (tag 12), for the UPN otherName value."""
    data = text.encode("utf-8")
    if len(data) < 128:
        return bytes([12, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([12, 0x80 | len(size)]) + size + data


# ---------------------------------------------------------------- records


def get_keypair(s: Session, user_id: str, name: str) -> KeyPair:
    """The user's key pair of this name; NotFound otherwise. Servers call this at create."""
    keypair = s.scalar(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))
    if keypair is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}")
    return keypair


def list_keypairs(s: Session, user_id: str, limit: int | None = None,
                  marker: str | None = None) -> list[KeyPair]:
    """The user's key pairs by name; a page after `marker` (BadRequest if unknown)."""
    query = select(KeyPair).where(KeyPair.user_id == user_id).order_by(KeyPair.name, KeyPair.id)
    if marker is not None:
        if s.scalar(select(KeyPair.id).where(KeyPair.user_id == user_id,
                                             KeyPair.name == marker)) is None:
            raise BadRequest(f"Marker {marker} could not be found.")
        query = query.where(KeyPair.name > marker)
    if limit is not None:
        query = query.limit(limit)
    return list(s.scalars(query))


@dataclass
class KeyMaterial:
    """A validated public key with its fingerprint, and the private half if Cirrus made it."""

    key_type: str
    public_key: str
    fingerprint: str
    private_key: str | None = None


def prepare_key(key_type: str, user_id: str, public_key: str | None = None) -> KeyMaterial:
    """Check an imported public key, or generate a key pair when `public_key` is None.

    Pure computation (no database), so callers do it before opening a write transaction.
    """
    if public_key is None:
        private, public, print_ = generate_x509(user_id) if key_type == X509 else generate_ssh()
        return KeyMaterial(key_type, public, print_, private)
    return KeyMaterial(key_type, public_key, fingerprint(public_key, key_type))


def create_keypair(s: Session, settings: Settings, *, project_id: str | None, user_id: str,
                   name: str, material: KeyMaterial) -> KeyPair:
    """Record a key pair. Conflict if the user has one of this name; QuotaExceeded past
    the key_pairs quota of `project_id`."""
    quotas.check_key_pairs(s, settings, project_id, user_id)
    if s.scalar(select(KeyPair.id).where(KeyPair.user_id == user_id,
                                         KeyPair.name == name)) is not None:
        raise Conflict(f"Key pair '{name}' already exists.")
    keypair = KeyPair(name=name, user_id=user_id, fingerprint=material.fingerprint,
                      public_key=material.public_key, type=material.key_type)
    s.add(keypair)
    try:
        s.flush()
    except IntegrityError:  # a concurrent create of the same name won
        raise Conflict(f"Key pair '{name}' already exists.") from None
    return keypair


def delete_keypair(s: Session, user_id: str, name: str) -> None:
    s.delete(get_keypair(s, user_id, name))
    s.flush()
