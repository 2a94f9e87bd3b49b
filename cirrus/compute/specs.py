"""The build contract: an instance's database rows turned into the driver-neutral
InstanceSpec (cirrus.virt.spec) that the conductor sends to the host's agent, which has no
database. Nothing here knows which driver will read it."""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from cirrus import build_secrets
from cirrus.compute import networking, volumes
from cirrus.db.models import Image, Instance, Volume
from cirrus.network.model import Nic
from cirrus.storage.pools import requested_storage_pool
from cirrus.storage.volumes import attachments
from cirrus.virt.spec import ConfigDrive, ImageInfo, InstanceSpec, root_disk, truthy


def build_spec(s: Session, inst: Instance) -> InstanceSpec:
    """Everything an agent needs to build the VM of `inst`, as typed plain data."""
    image = s.get(Image, inst.image_ref) if inst.image_ref else None
    # Boot from volume (issue 15): the image the root volume was made from (if still
    # there) says how it boots (kernel, ramdisk, command line), as Nova reads the volume's
    # image metadata; it gives no local root disk.
    boot_image = image if image is not None or inst.image_ref else _boot_volume_image(s, inst)
    props = (boot_image.properties or {}) if boot_image is not None else {}
    kernel = s.get(Image, props["kernel_id"]) if props.get("kernel_id") else None
    ramdisk = s.get(Image, props["ramdisk_id"]) if props.get("ramdisk_id") else None
    spec = spec_of(inst, boot_image, kernel, ramdisk, networking.build_nics(s, inst.nics))
    if image is None and boot_image is not None:
        spec = dataclasses.replace(spec, block_devices=[])
    # issue 15: the attached volumes, so a rebuilt domain (hard reboot, start, rebuild,
    # resize, unshelve) has them again
    return with_volumes(s, spec)


def _boot_volume_image(s: Session, inst: Instance) -> Image | None:
    for att in attachments.of_instance(s, inst.uuid):
        if attachments.server_fields(att).get("boot_index") != 0:
            continue
        volume = s.get(Volume, att.volume_id)
        image_id = (volume.image_metadata or {}).get("image_id") or volume.image_id \
            if volume is not None else None
        return s.get(Image, image_id) if image_id else None
    return None


def with_volumes(s: Session, spec: InstanceSpec) -> InstanceSpec:
    """The spec with the instance's attached volumes (issue 15)."""
    return dataclasses.replace(spec, volumes=volumes.devices_of(s, spec.uuid))


def spec_of(inst: Instance, image: Image | None, kernel: Image | None = None,
            ramdisk: Image | None = None, nics: list[Nic] | None = None) -> InstanceSpec:
    """The spec of an Instance row, its Image row and, when the image's `kernel_id` and
    `ramdisk_id` properties name them, theirs. The pool it names is the one to record on
    the instance."""
    pool = None
    if image is not None:
        pool = requested_storage_pool((inst.flavor or {}).get("extra_specs"), image.properties)
    return InstanceSpec(
        uuid=inst.uuid, name=inst.hostname or inst.display_name, vcpus=inst.vcpus,
        memory_mb=inst.memory_mb, root_gb=inst.root_gb, image_ref=inst.image_ref,
        user_data=inst.user_data, key_data=inst.key_data,
        metadata=dict(inst.metadata_items or {}),
        image=image_info(image) if image is not None else None,
        kernel=image_info(kernel, with_properties=False) if kernel is not None else None,
        ramdisk=image_info(ramdisk, with_properties=False) if ramdisk is not None else None,
        nics=list(nics or []),
        config_drive=config_drive(inst),
        storage_pool=pool,
        block_devices=[root_disk(image.id, inst.root_gb)] if image is not None else [])


def image_info(image: Image, with_properties: bool = True) -> ImageInfo:
    """What an agent needs to know of an image row."""
    return ImageInfo(id=image.id, disk_format=image.disk_format, size=image.size,
                     checksum=image.checksum, os_hash_algo=image.os_hash_algo,
                     os_hash_value=image.os_hash_value,
                     properties=dict(image.properties or {}) if with_properties else {})


def config_drive(inst: Instance) -> ConfigDrive:
    """The config drive's contents beyond NICs, keys, user data and metadata; the build
    secrets pass on sealed (the agent opens them) until the conductor erases them."""
    request_spec = inst.request_spec or {}
    return ConfigDrive(
        requested=truthy(inst.config_drive), display_name=inst.display_name,
        key_name=inst.key_name, availability_zone=inst.availability_zone or "",
        project_id=inst.project_id, launch_index=inst.launch_index or 0,
        build_secrets=request_spec.get(build_secrets.SEALED) or None,
        admin_pass=request_spec.get("admin_pass") or None,
        injected_files=list(request_spec.get("injected_files") or []))
