"""What the libvirt driver derives from an InstanceSpec's typed fields (cirrus.virt.spec):
the images to boot, the root disk's size, whether to attach a config drive and what goes on
it. Everything here is pure: it turns plain data into plain data, and says what is missing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cirrus.build_secrets import BuildSecrets
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.libvirt.domain import DEFAULT_CMDLINE
from cirrus.virt.libvirt.images import ImageRef
from cirrus.virt.spec import ImageInfo, truthy


@dataclass(frozen=True)
class BootImages:
    root: ImageRef | None  # None: the VM boots from a volume (no local root disk)
    properties: dict
    kernel: ImageRef | None = None
    ramdisk: ImageRef | None = None

    @property
    def cmdline(self) -> str:
        return str(self.properties.get("os_command_line") or DEFAULT_CMDLINE)


def boot_images(spec: InstanceSpec) -> BootImages:
    """The root image and, for direct kernel boot, kernel and ramdisk; SpawnError when the
    spec does not carry what the image needs, or asks for disks this driver cannot give."""
    image = spec.image
    from_volume = spec.boot_volume() is not None
    if image is None and from_volume:
        return BootImages(root=None, properties={})
    if image is None:
        raise SpawnError(f"instance {spec.uuid}: the spec has no image (spec.image) and no "
                         "volume with boot_index 0 to boot from")
    others = [d for d in spec.block_devices if d.destination_type != "local"]
    if others:
        raise SpawnError(f"instance {spec.uuid}: volumes come as spec.volumes "
                         f"(VolumeDevice), not as block devices ({len(others)} given)")
    parts = {}
    for part, wanted, given in (("kernel", image.kernel_id, spec.kernel),
                                ("ramdisk", image.ramdisk_id, spec.ramdisk)):
        if wanted and not given:
            raise SpawnError(f"image {image.id} boots with {part} {wanted}, but the spec "
                             f"does not describe it (spec.{part})")
        parts[part] = _image_ref(given) if given else None
    if parts["ramdisk"] and not parts["kernel"]:
        raise SpawnError(f"image {image.id} has a ramdisk but no kernel")
    # Booting from a volume, the image only says how (kernel, command line, properties).
    return BootImages(root=None if from_volume else _image_ref(image),
                      properties=dict(image.properties), **parts)


def _image_ref(image: ImageInfo) -> ImageRef:
    return ImageRef.from_dict(image.to_dict())


def root_disk_bytes(spec: InstanceSpec) -> int | None:
    """The root disk's size (its block device's, else the flavor's); None (0) means the
    image's own size, as in Nova."""
    root = spec.root_device()
    size_gb = root.size_gb if root is not None else spec.root_gb
    return size_gb * 1024**3 if size_gb > 0 else None


def wants_config_drive(spec: InstanceSpec, force: bool) -> bool:
    return force or spec.config_drive.requested


def config_drive_inputs(spec: InstanceSpec, image_properties: dict,
                        secrets: BuildSecrets | None = None) -> dict:
    """Keyword arguments of cirrus.virt.configdrive.build_config_drive (but path and fmt);
    `secrets`: the spec's build secrets, opened (InstanceSpec.open_build_secrets)."""
    secrets = secrets or BuildSecrets()
    drive = spec.config_drive
    keys = {}
    if spec.key_data:
        keys[drive.key_name or "default"] = spec.key_data
    return {
        "uuid": spec.uuid,
        "hostname": spec.name,
        "name": drive.display_name or spec.name,
        "public_keys": keys,
        "admin_pass": secrets.admin_pass,
        "user_data": base64.b64decode(spec.user_data) if spec.user_data else None,
        "injected_files": list(secrets.injected_files),
        "nics": sorted(spec.nics, key=lambda n: n.index),
        "inject_ip": truthy(image_properties.get("support_inject_ip")),
        "metadata": dict(spec.metadata),
        "availability_zone": drive.availability_zone,
        "project_id": drive.project_id,
        "launch_index": drive.launch_index,
    }
