"""LibvirtDriver: Cirrus's VirtDriver on libvirt + QEMU (KVM, or TCG where KVM is missing).

One libvirt connection per driver, shared by the agent's worker threads and opened again
when libvirtd restarted (connection.py). A domain is named
`cirrus-<uuid>` with the instance's uuid as its libvirt UUID; its files (root disk, config
drive, console log) live in `<storage pool dir>/<uuid>/`, which the domain's metadata names.

The agent plugs every NIC (bridge + persistent tap) before `spawn` and `attach_interface`,
and unplugs after `destroy` and `detach_interface`; this driver only points QEMU at the taps.
"""

from __future__ import annotations

import logging
import threading

from cirrus.config import Settings
from cirrus.virt.driver import DriverCapabilities
from cirrus.virt.libvirt.build import Build
from cirrus.virt.libvirt.diagnostics import Diagnostics
from cirrus.virt.libvirt.drive import ConfigDriveBuilder
from cirrus.virt.libvirt.host import HostSide
from cirrus.virt.libvirt.images import ImageCache
from cirrus.virt.libvirt.interfaces import Interfaces
from cirrus.virt.libvirt.probe import resolve_virt_type
from cirrus.virt.libvirt.resize import Resizing
from cirrus.virt.libvirt.storage import StoragePools
from cirrus.virt.libvirt.volumes import Volumes

log = logging.getLogger(__name__)


class LibvirtDriver(HostSide, Volumes, Build, Resizing, Interfaces, Diagnostics):
    """The parts by what they do: connection.py (the libvirt connection), host.py, build.py,
    drive.py (the config drive), operations.py (power, snapshot, console), resize.py (cold
    resize over operations.py), interfaces.py, volumes.py (attach, detach, extend; the Ceph
    secret in secrets.py)."""

    # Memory ballooning is not wired up yet.
    capabilities = DriverCapabilities(hot_plug_nic=True, snapshot=True, balloon=False,
                                      volume_attach=True)

    def __init__(self, settings: Settings, host: str,
                 config_drive_builder: ConfigDriveBuilder | None = None) -> None:
        """`config_drive_builder`: cirrus.virt.configdrive.build_config_drive unless given
        (tests pass their own)."""
        self.settings = settings
        self.host = host
        self.uri = settings.libvirt_uri
        self.virt_type = resolve_virt_type(settings.virt_type)
        self.pools = StoragePools(settings.effective_storage_pools, host)
        self.images = ImageCache(settings.effective_image_dir,
                                 settings.effective_image_cache_dir)
        self._build_config_drive = config_drive_builder
        self._access = None
        self._conn = None
        self._conn_lock = threading.Lock()
        log.info("libvirt driver for %s on %s, domain type %s, pools %s", host, self.uri,
                 self.virt_type, ", ".join(f"{n}={p}" for n, p in self.pools.pools.items()))
