"""Virt drivers behind one interface (cirrus.virt.driver.VirtDriver)."""

from __future__ import annotations

from pathlib import Path

from cirrus.config import Settings
from cirrus.virt.driver import VirtDriver


def load_driver(settings: Settings, host: str) -> VirtDriver:
    if settings.virt_driver == "fake":
        from cirrus.virt.fake import FakeDriver

        return FakeDriver(host, settings.fake, Path(settings.data_dir) / "fake-hosts", settings)
    if settings.virt_driver == "libvirt":
        try:
            from cirrus.virt.libvirt.driver import LibvirtDriver
        except ImportError as exc:
            raise ValueError(
                f"virt_driver libvirt needs libvirt-python ({exc}): install Cirrus with the "
                "libvirt extra (Debian: libvirt-dev and pkg-config to build it)") from exc
        return LibvirtDriver(settings, host)
    raise ValueError(f"unknown virt driver {settings.virt_driver!r} (known: fake, libvirt)")
