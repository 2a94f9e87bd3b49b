"""The libvirt secret that holds a Ceph user's key, so QEMU can open RBD volumes.

A domain's RBD disk names the secret (`<auth username=...><secret type='ceph' uuid=.../>`),
never the key. The driver defines the secret on first use: `ephemeral='no'` (it outlives
libvirtd restarts), `private='yes'` (libvirt never hands the value back through its API),
usage `ceph` named `client.<user> secret <uuid>`, with the key read from the user's keyring
on this host. It is idempotent: an existing secret keeps its UUID and gets the value again
(a rotated key is picked up at the next attach). A host without the keyring uses a secret
an operator defined by hand (docs/ceph.md); with neither, the attach fails saying so.

The key never goes into a log line, an exception message or a domain's XML.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid as uuidlib
from pathlib import Path

import libvirt

from cirrus.virt.driver import VolumeError

# Where Ceph itself looks when no keyring is named ($cluster.$name.keyring, ...).
DEFAULT_KEYRINGS = ("/etc/ceph/ceph.{name}.keyring", "/etc/ceph/ceph.keyring",
                    "/etc/ceph/keyring")
# A secret UUID for connections that name none: the same on every host for a user.
SECRET_NAMESPACE = uuidlib.UUID("6c1f3a52-94d1-4b7e-9d0b-5a0c1e2f3a4b")


class CephSecretError(VolumeError):
    """The Ceph key could not be found or stored in libvirt; says where it looked."""


def secret_uuid_for(data: dict) -> str:
    """The libvirt secret's UUID for an rbd connection: the one it names, else one derived
    from the user name (stable across hosts)."""
    given = str(data.get("secret_uuid") or "").strip()
    if given:
        try:
            return str(uuidlib.UUID(given))
        except ValueError:
            raise CephSecretError(f"secret_uuid {given!r} of the rbd connection is not a "
                                  "UUID") from None
    return str(uuidlib.uuid5(SECRET_NAMESPACE, f"client.{_user(data)}"))


def _user(data: dict) -> str:
    return str(data.get("auth_username") or "cirrus")


def usage_name(user: str, secret_uuid: str) -> str:
    return f"client.{user} secret {secret_uuid}"


def secret_xml(secret_uuid: str, user: str) -> str:
    return (f"<secret ephemeral='no' private='yes'><uuid>{secret_uuid}</uuid>"
            f"<usage type='ceph'><name>{usage_name(user, secret_uuid)}</name></usage></secret>")


def read_key(data: dict) -> bytes | None:
    """The user's key (raw bytes, as libvirt's ceph secret holds it) from the keyring the
    connection names, else Ceph's default keyring paths; None when there is no keyring
    file. A keyring without the user's key is a CephSecretError (naming the file, not the
    key)."""
    name = f"client.{_user(data)}"
    named = str(data.get("keyring") or "").strip()
    candidates = [named] if named else [p.format(name=name) for p in DEFAULT_KEYRINGS]
    for candidate in candidates:
        path = Path(candidate)
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except OSError as exc:
            raise CephSecretError(f"cannot read the keyring {path}: {exc.strerror}") from None
        key = keyring_key(text, name)
        if key is None:
            raise CephSecretError(f"the keyring {path} has no key for {name}")
        return key
    if named:
        raise CephSecretError(f"the keyring {named} of the rbd connection does not exist on "
                              "this host")
    return None


def keyring_key(text: str, name: str) -> bytes | None:
    """The base64-decoded `key` of section `[name]` of a Ceph keyring's text."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(.+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        key, sep, value = line.partition("=")
        if sep and section == name and key.strip() == "key":
            try:
                return base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise CephSecretError(f"the key of {name} in its keyring is not "
                                      "base64") from None
    return None


def ensure_ceph_secret(conn: libvirt.virConnect, data: dict) -> str:
    """Define (or refresh) the libvirt secret for an rbd connection's user; its UUID.
    libvirt errors propagate (the caller's _call turns them into SpawnErrors)."""
    secret_uuid = secret_uuid_for(data)
    user = _user(data)
    key = read_key(data)
    try:
        secret = conn.secretLookupByUUIDString(secret_uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
            raise
        secret = None
    if secret is None:
        if key is None:
            raise CephSecretError(
                f"no libvirt secret {secret_uuid} for client.{user} and no keyring for it on "
                "this host (/etc/ceph/ceph.client.<user>.keyring or the backend's keyring=): "
                "define the secret (docs/ceph.md) or install the keyring")
        secret = conn.secretDefineXML(secret_xml(secret_uuid, user), 0)
    if key is not None:
        secret.setValue(key, 0)
    return secret_uuid
