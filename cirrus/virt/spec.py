"""InstanceSpec: what a driver needs to build one VM, as typed, driver-neutral data.

The conductor builds it (cirrus.compute.specs) and sends it to the agent as plain JSON
(`to_dict`, with a version); the agent reads it back with `from_dict`, which also accepts
the shape of version 1 (everything beyond sizes and NICs in an untyped `extra` dict), so an
agent upgraded before its conductor still builds what an old conductor sends.
"""

from __future__ import annotations

import base64
import dataclasses
import re
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


VOLUME_TYPES = ("file", "rbd")
VOLUME_BUSES = ("virtio", "scsi")
# A disk name a user may ask for (a hint: one of another bus is replaced by a free one).
DEVICE_NAME = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,2}$")
QOS_KEYS = ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec",
            "total_iops_sec", "read_iops_sec", "write_iops_sec")


class VolumeSpecError(ValueError):
    """A volume device that cannot be described to a hypervisor; the message names the field."""


@dataclass(frozen=True)
class VolumeQos:
    """Limits on a volume's I/O (Cinder QoS specs, consumer `front-end`), 0: no limit; the
    libvirt driver writes them as the disk's `<iotune>`."""

    total_bytes_sec: int = 0
    read_bytes_sec: int = 0
    write_bytes_sec: int = 0
    total_iops_sec: int = 0
    read_iops_sec: int = 0
    write_iops_sec: int = 0

    def limits(self) -> dict[str, int]:
        """The limits that are set, by libvirt's `<iotune>` element names."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VolumeQos:
        """From this shape or a Cinder QoS spec's (strings); unknown keys are ignored."""
        values = {}
        for key in QOS_KEYS:
            value = (data or {}).get(key)
            if value in (None, ""):
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise VolumeSpecError(f"qos.{key} must be a whole number, not {value!r}") from None
            if number < 0:
                raise VolumeSpecError(f"qos.{key} must not be negative ({number})")
            values[key] = number
        if values.get("total_bytes_sec") and (values.get("read_bytes_sec")
                                              or values.get("write_bytes_sec")):
            raise VolumeSpecError("qos.total_bytes_sec cannot be combined with "
                                  "read_bytes_sec or write_bytes_sec")
        if values.get("total_iops_sec") and (values.get("read_iops_sec")
                                             or values.get("write_iops_sec")):
            raise VolumeSpecError("qos.total_iops_sec cannot be combined with "
                                  "read_iops_sec or write_iops_sec")
        return cls(**values)


@dataclass(frozen=True)
class VolumeDevice:
    """A volume as a disk of the VM: the volume service's connection (its `Connection`,
    as plain data: `driver_volume_type` "file" with data {"path", "format"}, or "rbd" with
    data {"name": "pool/image", "hosts", "ports", "auth_enabled", "auth_username",
    "secret_uuid", "secret_type", "conf", "keyring"}) and how the guest sees it. The guest
    sees the volume id as the disk's serial (/dev/disk/by-id/virtio-<id[:20]>).

    `device_name`: the target ("vdb", "/dev/vdb" is read as "vdb"); None: the driver picks
    the first free one at attach and returns it. `boot_index` 0: the VM boots from this
    volume (boot from volume: no local root disk)."""

    volume_id: str
    driver_volume_type: str
    data: dict[str, Any] = field(default_factory=dict)
    device_name: str | None = None
    bus: str = "virtio"
    read_only: bool = False
    qos: VolumeQos = field(default_factory=VolumeQos)
    boot_index: int | None = None

    def __post_init__(self) -> None:
        if not self.volume_id or not isinstance(self.volume_id, str):
            raise VolumeSpecError("volume_id is required")
        if self.driver_volume_type not in VOLUME_TYPES:
            raise VolumeSpecError(f"driver_volume_type must be one of {', '.join(VOLUME_TYPES)}"
                                  f", not {self.driver_volume_type!r}")
        if self.bus not in VOLUME_BUSES:
            raise VolumeSpecError(f"bus must be one of {', '.join(VOLUME_BUSES)}, "
                                  f"not {self.bus!r}")
        if self.driver_volume_type == "file" and not self.data.get("path"):
            raise VolumeSpecError("data.path is required for a file volume")
        if self.driver_volume_type == "file" and self.data.get("format", "qcow2") not in (
                "qcow2", "raw"):
            raise VolumeSpecError(f"data.format must be qcow2 or raw, not "
                                  f"{self.data.get('format')!r}")
        if self.driver_volume_type == "rbd" and "/" not in str(self.data.get("name") or ""):
            raise VolumeSpecError("data.name must be pool/image for an rbd volume")
        if self.device_name is not None:
            name = self.device_name.removeprefix("/dev/")
            if not DEVICE_NAME.match(name):
                raise VolumeSpecError(f"device_name must be a disk name such as vdb or "
                                      f"/dev/vdb, not {self.device_name!r}")
            object.__setattr__(self, "device_name", name)

    @property
    def serial(self) -> str:
        return self.volume_id

    @property
    def target(self) -> str | None:
        return self.device_name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolumeDevice:
        """From `to_dict`; `connection` may also come as Cinder's connection_info
        ({"driver_volume_type", "data"}) under the key `connection`."""
        conn = data.get("connection") or {}
        boot_index = data.get("boot_index")
        return cls(volume_id=data.get("volume_id") or "",
                   driver_volume_type=data.get("driver_volume_type")
                   or conn.get("driver_volume_type") or "",
                   data=dict(data.get("data") or conn.get("data") or {}),
                   device_name=data.get("device_name") or None,
                   bus=data.get("bus") or "virtio",
                   read_only=truthy(data.get("read_only", False)),
                   qos=VolumeQos.from_dict(data.get("qos")),
                   boot_index=int(boot_index) if boot_index is not None else None)


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
    # The volumes attached to the VM (issue 15): a spawn (build, rebuild) attaches them all;
    # one with boot_index 0 is the disk the VM boots from (boot from volume).
    volumes: list[VolumeDevice] = field(default_factory=list)

    def boot_volume(self) -> VolumeDevice | None:
        """The volume the VM boots from (boot from volume), if any."""
        return next((v for v in self.volumes if v.boot_index == 0), None)

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
            block_devices=[BlockDevice.from_dict(d) for d in data.get("block_devices") or []],
            volumes=[VolumeDevice.from_dict(v) for v in data.get("volumes") or []])


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
