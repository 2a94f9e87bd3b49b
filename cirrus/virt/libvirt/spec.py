"""What the libvirt driver reads from an InstanceSpec, beyond vCPUs, memory and NICs.

The conductor puts it in `InstanceSpec.extra` with `spec_extra` (docs/libvirt.md lists every
key):

- `image`: {id, disk_format, size, checksum, os_hash_algo, os_hash_value, properties};
- `kernel`, `ramdisk`: the same (without properties) for the images the image's
  `kernel_id`/`ramdisk_id` properties name, when it has them;
- `storage_pool`: the pool asked for (storage.requested_storage_pool), absent: default;
- `config_drive`: true to attach a config drive (the setting force_config_drive also does);
- for the config drive: `display_name`, `key_name`, `availability_zone`, `project_id`,
  `launch_index`, and `build_secrets`: the admin password and injected files, sealed by the
  API (cirrus.compute.build_secrets; the driver opens them with the key file). A spec from
  before they were sealed may carry `admin_pass` and `injected_files` ([[guest path, base64
  content], ...]) instead.

Everything here is pure: it turns plain data into plain data, and says what is missing.
`spec_extra` is the conductor's half (it has the database rows), the rest the driver's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cirrus.compute.build_secrets import SEALED, BuildSecrets
from cirrus.network.model import Nic
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.libvirt.domain import DEFAULT_CMDLINE
from cirrus.virt.libvirt.images import ImageRef
from cirrus.virt.libvirt.storage import requested_storage_pool

TRUE_WORDS = ("true", "1", "yes", "on")


def image_summary(image: object, with_properties: bool = True) -> dict:
    """What an agent needs to know of an image (a cirrus.db.models.Image row)."""
    summary = {"id": image.id, "disk_format": image.disk_format, "size": image.size,
               "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
               "os_hash_value": image.os_hash_value}
    if with_properties:
        summary["properties"] = dict(image.properties or {})
    return summary


def spec_extra(instance: object, image: object | None, kernel: object | None = None,
               ramdisk: object | None = None) -> dict:
    """`InstanceSpec.extra` for an Instance row, its Image row and, when the image's
    `kernel_id`/`ramdisk_id` properties name them, theirs. The conductor calls it; the pool
    it names (`storage_pool`) is the one to record on the instance."""
    extra: dict = {
        "display_name": instance.display_name,
        "key_name": instance.key_name,
        "availability_zone": instance.availability_zone or "",
        "project_id": instance.project_id,
        "launch_index": instance.launch_index or 0,
        "config_drive": _truthy(instance.config_drive),
    }
    request_spec = instance.request_spec or {}
    for key in (SEALED, "admin_pass", "injected_files"):  # instances.BUILD_SECRETS
        if request_spec.get(key):
            extra[key] = request_spec[key]
    if image is None:
        return extra
    extra["image"] = image_summary(image)
    for part, row in (("kernel", kernel), ("ramdisk", ramdisk)):
        if row is not None:
            extra[part] = image_summary(row, with_properties=False)
    pool = requested_storage_pool((instance.flavor or {}).get("extra_specs"),
                                  image.properties)
    if pool:
        extra["storage_pool"] = pool
    return extra


@dataclass(frozen=True)
class BootImages:
    root: ImageRef
    properties: dict
    kernel: ImageRef | None = None
    ramdisk: ImageRef | None = None

    @property
    def cmdline(self) -> str:
        return str(self.properties.get("os_command_line") or DEFAULT_CMDLINE)


def boot_images(spec: InstanceSpec) -> BootImages:
    """The root image and, for direct kernel boot, kernel and ramdisk; SpawnError when the
    spec does not carry what the image needs."""
    image = spec.extra.get("image")
    if not image:
        raise SpawnError(f"instance {spec.uuid}: the spec has no image (extra.image); the "
                         "libvirt driver boots from an image only")
    properties = dict(image.get("properties") or {})
    parts = {}
    for part in ("kernel", "ramdisk"):
        wanted = properties.get(f"{part}_id")
        given = spec.extra.get(part)
        if wanted and not given:
            raise SpawnError(f"image {image['id']} boots with {part} {wanted}, but the spec "
                             f"does not describe it (extra.{part})")
        parts[part] = ImageRef.from_dict(given) if given else None
    if parts["ramdisk"] and not parts["kernel"]:
        raise SpawnError(f"image {image['id']} has a ramdisk but no kernel")
    return BootImages(root=ImageRef.from_dict(image), properties=properties, **parts)


def root_disk_bytes(spec: InstanceSpec) -> int | None:
    """The flavor's root disk; None (root_gb 0) means the image's own size, as in Nova."""
    return spec.root_gb * 1024**3 if spec.root_gb > 0 else None


def wants_config_drive(spec: InstanceSpec, force: bool) -> bool:
    return force or _truthy(spec.extra.get("config_drive"))


def config_drive_inputs(spec: InstanceSpec, image_properties: dict,
                        secrets: BuildSecrets | None = None) -> dict:
    """Keyword arguments of cirrus.virt.configdrive.build_config_drive (but path and fmt);
    `secrets`: the spec's build secrets, opened (cirrus.compute.build_secrets.from_extra)."""
    secrets = secrets or BuildSecrets()
    keys = {}
    if spec.key_data:
        keys[spec.extra.get("key_name") or "default"] = spec.key_data
    return {
        "uuid": spec.uuid,
        "hostname": spec.name,
        "name": spec.extra.get("display_name") or spec.name,
        "public_keys": keys,
        "admin_pass": secrets.admin_pass,
        "user_data": base64.b64decode(spec.user_data) if spec.user_data else None,
        "injected_files": list(secrets.injected_files),
        "nics": [Nic.from_dict(nic) for nic in sorted(spec.nics, key=lambda n: n["index"])],
        "inject_ip": _truthy(image_properties.get("support_inject_ip")),
        "metadata": dict(spec.metadata),
        "availability_zone": spec.extra.get("availability_zone") or "",
        "project_id": spec.extra.get("project_id") or "",
        "launch_index": int(spec.extra.get("launch_index") or 0),
    }


def _truthy(value: object) -> bool:
    """Glance properties are strings ("True"); extra values may be real booleans."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)
