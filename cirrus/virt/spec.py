"""InstanceSpec: what a driver needs to build one VM, as typed, driver-neutral data.

The conductor builds it (cirrus.compute.specs) and sends it to the agent as plain JSON
(`to_dict`, with a version); the agent reads it back with `from_dict`, which also accepts
the shape of version 1 (everything beyond sizes and NICs in an untyped `extra` dict), so an
agent upgraded before its conductor still builds what an old conductor sends.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cirrus import build_secrets
from cirrus.network.model import Nic

SPEC_VERSION = 2
TRUE_WORDS = ("true", "1", "yes", "on")


@dataclass(frozen=True)
class ImageInfo:
    """What an agent needs to know of an image to fetch, verify and boot it."""

    id: str
    disk_format: str | None = None
    size: int | None = None
    checksum: str | None = None  # md5 hex (Glance's `checksum`)
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def kernel_id(self) -> str | None:
        return self.properties.get("kernel_id") or None

    @property
    def ramdisk_id(self) -> str | None:
        return self.properties.get("ramdisk_id") or None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageInfo:
        return cls(id=data["id"], disk_format=data.get("disk_format"), size=data.get("size"),
                   checksum=data.get("checksum"), os_hash_algo=data.get("os_hash_algo"),
                   os_hash_value=data.get("os_hash_value"),
                   properties=dict(data.get("properties") or {}))


@dataclass(frozen=True)
class BlockDevice:
    """One disk of the VM, in the terms of Nova's block device mapping. Today the root disk
    made from the image (source `image`, destination `local`); a volume will come as
    destination `volume` with the volume service's `connection_info`."""

    boot_index: int | None = 0
    source_type: str = "image"  # image | volume | blank
    destination_type: str = "local"  # local | volume
    size_gb: int = 0  # 0: the image's own size
    image_id: str | None = None
    volume_id: str | None = None
    device_name: str | None = None
    disk_bus: str = "virtio"
    connection_info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockDevice:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ConfigDrive:
    """What the guest's config drive says beyond the spec's NICs, keys, user data and
    metadata. `build_secrets` is the admin password and injected files sealed by the API
    (cirrus.build_secrets); `admin_pass` and `injected_files` carry them unsealed only in a
    spec from before they were sealed."""

    requested: bool = False  # the user asked for one; a host's force_config_drive also does
    display_name: str | None = None
    key_name: str | None = None
    availability_zone: str = ""
    project_id: str = ""
    launch_index: int = 0
    build_secrets: str | None = field(default=None, repr=False)
    admin_pass: str | None = field(default=None, repr=False)
    injected_files: list[list[str]] = field(default_factory=list, repr=False)  # [[path, base64], ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigDrive:
        names = {f.name for f in dataclasses.fields(cls)}
        drive = cls(**{k: v for k, v in data.items() if k in names})
        return dataclasses.replace(drive, requested=truthy(drive.requested),
                                   availability_zone=drive.availability_zone or "",
                                   project_id=drive.project_id or "",
                                   launch_index=int(drive.launch_index or 0),
                                   injected_files=list(drive.injected_files or []))


@dataclass
class InstanceSpec:
    """What a driver needs to build one VM: plain data from the conductor."""

    uuid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    image_ref: str | None = None
    user_data: str | None = None  # base64, as the API took it
    key_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    image: ImageInfo | None = None
    kernel: ImageInfo | None = None  # the images the image's kernel_id/ramdisk_id name
    ramdisk: ImageInfo | None = None
    # In guest order; the agent plugs them into the host's dataplane before the driver
    # starts the VM.
    nics: list[Nic] = field(default_factory=list)
    config_drive: ConfigDrive = field(default_factory=ConfigDrive)
    storage_pool: str | None = None  # None: the host's default pool
    block_devices: list[BlockDevice] = field(default_factory=list)

    def root_device(self) -> BlockDevice | None:
        """The local disk the VM boots from; None in a spec that lists no devices."""
        return next((d for d in self.block_devices
                     if d.boot_index == 0 and d.destination_type == "local"), None)

    def open_build_secrets(self, settings: build_secrets.KeySettings) -> build_secrets.BuildSecrets:
        """The admin password and injected files: opened with the host's key file (a
        BuildSecretsError when it cannot), or as they came in a spec from before sealing."""
        drive = self.config_drive
        if drive.build_secrets:
            return build_secrets.open_sealed(settings, self.uuid, drive.build_secrets)
        return build_secrets.BuildSecrets(
            admin_pass=drive.admin_pass,
            injected_files=[(path, base64.b64decode(content))
                            for path, content in drive.injected_files])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for the bus and for files the driver keeps."""
        data = dataclasses.asdict(self)
        data["version"] = SPEC_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceSpec:
        """A spec from `to_dict`, or one of version 1 (with `extra`) from an older conductor."""
        if "extra" in data or "version" not in data:
            return _from_version_1(data)
        image, kernel, ramdisk = (ImageInfo.from_dict(data[k]) if data.get(k) else None
                                  for k in ("image", "kernel", "ramdisk"))
        return cls(
            uuid=data["uuid"], name=data["name"], vcpus=data["vcpus"],
            memory_mb=data["memory_mb"], root_gb=data["root_gb"],
            image_ref=data.get("image_ref"), user_data=data.get("user_data"),
            key_data=data.get("key_data"), metadata=dict(data.get("metadata") or {}),
            image=image, kernel=kernel, ramdisk=ramdisk,
            nics=[Nic.from_dict(n) for n in data.get("nics") or []],
            config_drive=ConfigDrive.from_dict(data.get("config_drive") or {}),
            storage_pool=data.get("storage_pool") or None,
            block_devices=[BlockDevice.from_dict(d) for d in data.get("block_devices") or []])


def _from_version_1(data: dict[str, Any]) -> InstanceSpec:
    """The spec of a conductor before the typed fields: libvirt's keys in `extra`
    (image, kernel, ramdisk, storage_pool, config_drive and the drive's contents)."""
    extra = dict(data.get("extra") or {})
    drive = ConfigDrive.from_dict({
        "requested": extra.get("config_drive"), "display_name": extra.get("display_name"),
        "key_name": extra.get("key_name"), "availability_zone": extra.get("availability_zone"),
        "project_id": extra.get("project_id"), "launch_index": extra.get("launch_index"),
        "build_secrets": extra.get(build_secrets.SEALED),
        "admin_pass": extra.get("admin_pass"), "injected_files": extra.get("injected_files")})
    spec = InstanceSpec.from_dict({
        **{k: v for k, v in data.items() if k != "extra"}, "version": 1,
        "image": extra.get("image"), "kernel": extra.get("kernel"),
        "ramdisk": extra.get("ramdisk"), "storage_pool": extra.get("storage_pool"),
        "config_drive": drive.to_dict()})
    if spec.image is not None:
        spec.block_devices = [root_disk(spec.image.id, spec.root_gb)]
    return spec


def root_disk(image_id: str | None, size_gb: int) -> BlockDevice:
    """The root disk made from the image, of the flavor's size (0: the image's)."""
    return BlockDevice(boot_index=0, source_type="image", destination_type="local",
                       size_gb=size_gb, image_id=image_id)


def truthy(value: object) -> bool:
    """Glance properties are strings ("True"); other values may be real booleans."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)
