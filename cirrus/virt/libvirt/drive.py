"""The config drive of a libvirt instance, and the source it is made from again.

What the drive was made from (the spec, its build secrets still sealed; 0600 like the drive,
which has them in plain text for the guest) is kept beside it, with whether the NICs changed
since: a hot-plug or unplug marks it stale and the drive is made again while the domain is off.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cirrus import build_secrets
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.libvirt import spec as specs
from cirrus.virt.libvirt.connection import LibvirtBase

log = logging.getLogger(__name__)

CONFIG_DRIVE = "disk.config"
CONFIG_DRIVE_SOURCE = "disk.config.json"

ConfigDriveBuilder = Callable[..., Path]


class ConfigDrives(LibvirtBase):
    """An instance's config drive, made at spawn and again after its NICs changed."""

    _build_config_drive: ConfigDriveBuilder | None

    def _config_drive(self, spec: InstanceSpec, boot: specs.BootImages, inst_dir: Path,
                      again: bool = False) -> Path:
        build = self._build_config_drive
        if build is None:
            from cirrus.virt.configdrive import build_config_drive
            build = build_config_drive
        try:
            secrets = spec.open_build_secrets(self.settings)
        except build_secrets.BuildSecretsError as exc:
            if not again:
                log.error("config drive of %s on %s: %s", spec.uuid, self.host, exc)
                raise SpawnError(f"config drive of {spec.uuid} on {self.host}: "
                                 f"{build_secrets.UNOPENABLE}") from exc
            # Made again for a NIC change after the key it was sealed with was retired: the
            # guest took its password and files at first boot; the new drive goes without.
            log.warning("config drive of %s made again without its build secrets: %s",
                        spec.uuid, exc)
            secrets = build_secrets.BuildSecrets()
        drive = build(inst_dir / CONFIG_DRIVE, fmt=self.settings.config_drive_format,
                      **specs.config_drive_inputs(spec, boot.properties, secrets))
        _write_private_json(inst_dir / CONFIG_DRIVE_SOURCE,
                            {"spec": spec.to_dict(), "stale": False})
        return drive

    def _drive_source(self, uuid: str) -> tuple[Path, dict] | None:
        """The config drive's source file and contents; None for a VM without a drive."""
        inst_dir = self.pools.find_instance_dir(uuid)
        path = inst_dir / CONFIG_DRIVE_SOURCE if inst_dir else None
        if path is None or not path.exists():
            return None
        return path, json.loads(path.read_text())

    def _note_nics(self, uuid: str, change: Callable[[list[dict]], list[dict]]) -> None:
        """Record a NIC change for the config drive, made again at the next start."""
        found = self._drive_source(uuid)
        if found is None:
            return
        path, source = found
        source["spec"]["nics"] = change(source["spec"]["nics"])
        source["stale"] = True
        _write_private_json(path, source)

    def _refresh_config_drive(self, uuid: str) -> None:
        """Make the drive again from its source if the NICs changed; the domain is off, so
        QEMU opens the new file when it starts (a running QEMU keeps the old one open)."""
        found = self._drive_source(uuid)
        if found is None or not found[1].get("stale"):
            return
        path, source = found
        spec = InstanceSpec.from_dict(source["spec"])
        self._config_drive(spec, specs.boot_images(spec), path.parent, again=True)
        log.info("config drive of %s made again with %d NIC(s)", uuid, len(spec.nics))

    def _drive_is_stale(self, uuid: str) -> bool:
        found = self._drive_source(uuid)
        return bool(found and found[1].get("stale"))

def _write_private_json(path: Path, value: dict) -> None:
    """Write JSON readable by its owner only, replacing `path` whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh)
    os.replace(tmp, path)
