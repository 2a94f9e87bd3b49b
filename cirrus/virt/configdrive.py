"""The config drive: a small read-only disk labelled `config-2` that a guest reads at boot.

What goes on it (`drive_contents`, pure, no I/O) follows Nova's config drive
(nova/api/metadata/base.py, InstanceMetadata.metadata_for_config_drive) so cloud-init,
cloudbase-init and Glean read it unchanged:

- `openstack/<version>/meta_data.json` for every OpenStack metadata version Nova knows and
  `latest` (= the newest), each with the keys of its version: older versions leave out
  newer keys, as Nova does (random_seed from 2013-04-04, project_id from 2015-10-15,
  devices from 2016-06-30, dedicated_cpus from 2020-10-14). `meta`, `files`, `admin_pass`,
  `public_keys` and `keys` appear only when there is something to put in them (Nova's
  rule). `user_data` in every version when given; `vendor_data.json` from 2013-10-17,
  `network_data.json` from 2015-10-15 and `vendor_data2.json` from 2016-10-06.
- `openstack/content/0000`, `0001`, ...: the injected files, which meta_data.json's
  `files` maps to their guest paths.
- Cirrus extras for cirrus-guest-init, a POSIX shell script that cannot parse JSON:
  `cirrus/hostname`, `cirrus/authorized_keys`, and, when static addresses are injected,
  the marker `cirrus/inject-ip` with the files of cirrus.network.render (`interfaces`,
  `70-persistent-net.rules`, `netplan.yaml`). No ec2/ tree: nothing here reads it.

Two image formats (`build_config_drive`): vfat (the default: a disk image, which live
migration copies like any other disk) made by dosfstools' `mkfs.vfat` and filled by
mtools' `mcopy`, neither needing root or a mount; iso9660 (Joliet + Rock Ridge) made in
Python by pycdlib. Both are written beside the target and renamed into place, so a reader
never sees half a drive.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pycdlib

from cirrus.network.model import Nic
from cirrus.network.render import STATIC_MODES, address_mode, render_all
from cirrus.virt.driver import SpawnError

LABEL = "config-2"
FORMATS = ("vfat", "iso9660")
VFAT_SIZE_KIB = 64 * 1024  # Nova's CONFIGDRIVESIZE_BYTES: room to spare, sparse on disk

# Nova's OPENSTACK_VERSIONS (nova/api/metadata/base.py), oldest first; `latest` is the last.
FOLSOM, GRIZZLY, HAVANA, LIBERTY = "2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15"
NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY = "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27"
VICTORIA, EPOXY = "2020-10-14", "2025-04-04"
OPENSTACK_VERSIONS = (FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY,
                      VICTORIA, EPOXY)
LATEST = "latest"

RANDOM_SEED_BYTES = 512


class ConfigDriveError(SpawnError):
    """The drive could not be written (a tool missing or failing): the server's fault says so."""


# --- contents (pure) -------------------------------------------------------------------


def drive_contents(*, uuid: str, hostname: str, name: str, public_keys: dict[str, str],
                   admin_pass: str | None, user_data: bytes | None,
                   injected_files: Sequence[tuple[str, bytes]], nics: Sequence[Nic],
                   inject_ip: bool, metadata: dict, availability_zone: str, project_id: str,
                   launch_index: int = 0) -> dict[str, bytes]:
    """Every file of the drive: path relative to its root -> bytes."""
    contents = {f"openstack/content/{key}": data
                for key, data in _content_keys(injected_files).items()}
    base_meta = _base_meta_data(uuid=uuid, hostname=hostname, name=name,
                                public_keys=public_keys, admin_pass=admin_pass,
                                injected_files=injected_files, metadata=metadata,
                                availability_zone=availability_zone,
                                launch_index=launch_index)
    network_files = render_all(nics, static=inject_ip)
    for version in (*OPENSTACK_VERSIONS, LATEST):
        contents.update(_version_files(version, base_meta, project_id, user_data,
                                       network_files["network_data"]))
    contents.update(_cirrus_files(hostname, public_keys, network_files,
                                  injects_static_ip(nics, inject_ip)))
    return contents


def injects_static_ip(nics: Sequence[Nic], inject_ip: bool) -> bool:
    """Whether the guest gets the rendered files: its image asks for them, or some address
    has no DHCP to come from (render's rule: a subnet with DHCP off is always static)."""
    return inject_ip or any(address_mode(ip) in STATIC_MODES
                            for nic in nics for ip in nic.fixed_ips)


def _content_keys(injected_files: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """Nova's content keys: "0000", "0001", ... in the order the files were given."""
    return {f"{index:04d}": data for index, (_, data) in enumerate(injected_files)}


def _base_meta_data(*, uuid: str, hostname: str, name: str, public_keys: dict[str, str],
                    admin_pass: str | None, injected_files: Sequence[tuple[str, bytes]],
                    metadata: dict, availability_zone: str, launch_index: int) -> dict:
    """The meta_data.json keys every version has, in Nova's order."""
    meta: dict = {"uuid": uuid}
    if metadata:
        meta["meta"] = dict(metadata)
    if injected_files:
        meta["files"] = [{"path": path, "content_path": f"/content/{key}"}
                         for (path, _), key in zip(injected_files,
                                                   _content_keys(injected_files), strict=True)]
    if admin_pass:
        meta["admin_pass"] = admin_pass
    if public_keys:
        meta["public_keys"] = dict(public_keys)
        meta["keys"] = [{"name": key_name, "type": "ssh", "data": key}
                        for key_name, key in public_keys.items()]
    meta.update(hostname=hostname, name=name, launch_index=launch_index,
                availability_zone=availability_zone)
    return meta


def _since(required: str, version: str) -> bool:
    """Whether metadata `version` has what `required` introduced (`latest` has everything)."""
    return version == LATEST or OPENSTACK_VERSIONS.index(version) >= OPENSTACK_VERSIONS.index(
        required)


def _version_files(version: str, base_meta: dict, project_id: str, user_data: bytes | None,
                   network_data: dict) -> dict[str, bytes]:
    """openstack/<version>/: the files of that version, as Nova writes them."""
    meta = dict(base_meta)
    if _since(GRIZZLY, version):
        meta["random_seed"] = base64.b64encode(os.urandom(RANDOM_SEED_BYTES)).decode()
    if _since(LIBERTY, version):
        meta["project_id"] = project_id
    if _since(NEWTON_ONE, version):
        meta["devices"] = []  # device tags are not supported yet
    if _since(VICTORIA, version):
        meta["dedicated_cpus"] = []  # no CPU pinning yet
    files = {"meta_data.json": _json(meta)}
    if user_data is not None:
        files["user_data"] = user_data
    if _since(HAVANA, version):
        files["vendor_data.json"] = _json({})
    if _since(LIBERTY, version):
        files["network_data.json"] = _json(network_data)
    if _since(NEWTON_TWO, version):
        # Nova's default providers (StaticJSON only, no vendor file) give exactly this.
        files["vendor_data2.json"] = _json({"static": {}})
    return {f"openstack/{version}/{file_name}": data for file_name, data in files.items()}


def _cirrus_files(hostname: str, public_keys: dict[str, str], network_files: dict,
                  inject: bool) -> dict[str, bytes]:
    """cirrus/: plain files for the guest script; the network ones only when injecting."""
    keys = "".join(key.strip() + "\n" for key in public_keys.values())
    files = {"hostname": f"{hostname}\n", "authorized_keys": keys}
    if inject:
        files.update({
            "inject-ip": "",
            "interfaces": network_files["interfaces"],
            "70-persistent-net.rules": network_files["udev_rules"],
            "netplan.yaml": network_files["netplan"],
        })
    return {f"cirrus/{file_name}": text.encode() for file_name, text in files.items()}


def _json(value: object) -> bytes:
    """JSON as Nova's jsonutils.dump_as_bytes writes it (json.dumps defaults)."""
    return json.dumps(value).encode()


# --- images (I/O) ----------------------------------------------------------------------


def build_config_drive(path: str | os.PathLike, *, uuid: str, hostname: str, name: str,
                       public_keys: dict[str, str], admin_pass: str | None,
                       user_data: bytes | None, injected_files: list[tuple[str, bytes]],
                       nics: list[Nic], inject_ip: bool, metadata: dict,
                       availability_zone: str, project_id: str, launch_index: int = 0,
                       fmt: str = "vfat") -> Path:
    """Write the drive image to `path` (replacing it whole) and return the path."""
    contents = drive_contents(
        uuid=uuid, hostname=hostname, name=name, public_keys=public_keys,
        admin_pass=admin_pass, user_data=user_data, injected_files=injected_files, nics=nics,
        inject_ip=inject_ip, metadata=metadata, availability_zone=availability_zone,
        project_id=project_id, launch_index=launch_index)
    return write_image(path, contents, fmt)


def write_image(path: str | os.PathLike, contents: dict[str, bytes], fmt: str) -> Path:
    """Write `contents` as a `fmt` image at path + ".tmp", then rename it to `path`."""
    if fmt not in FORMATS:
        raise ValueError(f"config drive format {fmt!r} is not one of {', '.join(FORMATS)}")
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash; mkfs.vfat -C refuses an existing file
    try:
        (_write_vfat if fmt == "vfat" else _write_iso9660)(tmp, contents)
        tmp.chmod(0o600)  # admin_pass is in it; libvirt hands the file to QEMU's user
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _write_vfat(image: Path, contents: dict[str, bytes]) -> None:
    """mkfs.vfat makes the file system in a new file; mcopy copies a staged tree into it."""
    _run(_tool("mkfs.vfat"), "-n", LABEL, "-C", str(image), str(VFAT_SIZE_KIB))
    with tempfile.TemporaryDirectory(prefix="cirrus-configdrive-") as staging:
        root = Path(staging)
        for relative, data in contents.items():
            file = root / relative
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        tops = sorted(str(entry) for entry in root.iterdir())
        _run(_tool("mcopy"), "-s", "-i", str(image), *tops, "::/")


def _write_iso9660(image: Path, contents: dict[str, bytes]) -> None:
    """pycdlib, in Python: ISO 9660 level 3 names (mangled), the real names in Joliet (for
    Windows guests) and Rock Ridge (for Linux guests), as genisoimage -J -r gives Nova."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=LABEL, sys_ident="LINUX", joliet=3,
            rock_ridge="1.09", app_ident_str="Cirrus")
    try:
        names = _Iso9660Names()
        for directory in _directories(contents):
            iso.add_directory(names.of(directory, is_dir=True), rr_name=directory.name,
                              joliet_path=f"/{directory}")
        for relative, data in sorted(contents.items()):
            file = PurePosixPath(relative)
            iso.add_fp(io.BytesIO(data), len(data), names.of(file, is_dir=False),
                       rr_name=file.name, joliet_path=f"/{file}")
        iso.write(str(image))
    finally:
        iso.close()


def _directories(contents: dict[str, bytes]) -> list[PurePosixPath]:
    """Every directory the files need, parents before children."""
    found = {parent for relative in contents
             for parent in PurePosixPath(relative).parents if parent != PurePosixPath(".")}
    return sorted(found, key=lambda directory: (len(directory.parts), str(directory)))


class _Iso9660Names:
    """ISO 9660 identifiers (A-Z, 0-9, _; 30 characters) for real paths, unique per
    directory; readers use the Joliet or Rock Ridge names, so these only need to be valid."""

    MAX = 30

    def __init__(self) -> None:
        self._paths: dict[PurePosixPath, str] = {PurePosixPath("."): ""}
        self._taken: dict[str, set[str]] = {}

    def of(self, path: PurePosixPath, *, is_dir: bool) -> str:
        parent = self._paths[path.parent]
        taken = self._taken.setdefault(parent, set())
        stem = re.sub(r"[^A-Z0-9_]", "_", path.name.upper())[: self.MAX] or "_"
        identifier, serial = stem, 0
        while identifier in taken:
            serial += 1
            suffix = f"_{serial}"
            identifier = stem[: self.MAX - len(suffix)] + suffix
        taken.add(identifier)
        self._paths[path] = f"{parent}/{identifier}"
        return self._paths[path] if is_dir else f"{self._paths[path]};1"


def _tool(name: str) -> str:
    """A program by name; mkfs.vfat lives in /usr/sbin, often not on a service's PATH."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        raise ConfigDriveError(f"{name} is not installed (Debian: dosfstools and mtools); "
                               "it is needed for vfat config drives")
    return found


def _run(*command: str) -> None:
    """Run a tool quietly; its stderr becomes the error when it fails."""
    # MTOOLS_SKIP_CHECK: mtools otherwise refuses images whose geometry it finds odd.
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    result = subprocess.run(command, capture_output=True, env=env, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise ConfigDriveError(f"{Path(command[0]).name} failed ({result.returncode}): "
                               f"{message}")
