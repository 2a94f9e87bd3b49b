"""The one boundary to a hypervisor. Every driver (fake, libvirt) implements this."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cirrus.virt.power import NOSTATE
from cirrus.virt.spec import InstanceSpec, VolumeDevice

__all__ = ["DriverCapabilities", "HostStats", "InstanceSpec", "SpawnError", "VirtDriver",
           "VolumeDetachTimeout", "VolumeDevice", "VolumeError"]


@dataclass(frozen=True)
class DriverCapabilities:
    """What a driver can do beyond spawn, destroy and power; the agent reports them with its
    host stats, and the API and the conductor refuse (409) what the host's driver cannot."""

    hot_plug_nic: bool = False
    snapshot: bool = False
    balloon: bool = False
    volume_attach: bool = False

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


@dataclass
class HostStats:
    hypervisor_type: str
    hypervisor_version: int
    vcpus: int
    memory_mb: int
    local_gb: int
    host_ip: str = "127.0.0.1"
    cpu_info: dict = field(default_factory=dict)
    # Storage pool name -> {"total_gb", "free_gb"}: where the scheduler may place a server
    # that asks for a pool. Empty: the agent does not report pools (older than this field).
    storage_pools: dict = field(default_factory=dict)
    # DriverCapabilities.to_dict(); empty: an agent older than capabilities.
    capabilities: dict = field(default_factory=dict)
    # When the host the agent runs on booted (seconds since the epoch; 0 if unknown): the
    # hypervisor's uptime. Both drivers run on the host they report, so both read it here.
    booted_at: float = field(default_factory=lambda: host_boot_time())


def host_boot_time() -> float:
    """The boot time of this machine from /proc/stat's `btime` (0 where there is none)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


class SpawnError(Exception):
    """The hypervisor could not build the VM; the message is shown in the server's fault."""


class VolumeError(SpawnError):
    """A volume could not be attached, detached or extended; the message says which volume,
    which VM and why (for the attachment's fault and the log)."""


class VolumeDetachTimeout(VolumeError):
    """The guest did not let go of a volume in time: it is still attached to the running VM
    (no longer to its definition: the next boot comes without it). Retry the detach later,
    or stop the VM, which releases it."""


def volume_device(volume: VolumeDevice | dict) -> VolumeDevice:
    """A VolumeDevice from itself or its to_dict() (what a bus message carries)."""
    return volume if isinstance(volume, VolumeDevice) else VolumeDevice.from_dict(volume)


class VirtDriver(abc.ABC):
    capabilities = DriverCapabilities()

    @abc.abstractmethod
    def host_stats(self) -> HostStats: ...

    @abc.abstractmethod
    def list_instances(self) -> dict[str, int]:
        """uuid -> power_state of every VM this host has."""

    @abc.abstractmethod
    def spawn(self, spec: InstanceSpec) -> None: ...

    @abc.abstractmethod
    def destroy(self, uuid: str) -> None:
        """Remove the VM and everything it had; a VM that does not exist is not an error."""

    @abc.abstractmethod
    def power_off(self, uuid: str) -> None: ...

    @abc.abstractmethod
    def power_on(self, uuid: str) -> None: ...

    @abc.abstractmethod
    def reboot(self, uuid: str, hard: bool) -> None: ...

    @abc.abstractmethod
    def console_output(self, uuid: str, length: int | None = None) -> str: ...

    @abc.abstractmethod
    def attach_interface(self, uuid: str, nic: dict,
                         server_nics: list[dict] | None = None) -> None:
        """Hot-plug a NIC (cirrus.network.model.Nic.to_dict()) into the VM; its tap exists.
        `server_nics`: all the server's NICs with this one, for telling the guest. Attaching
        a NIC the VM has already is not an error."""

    @abc.abstractmethod
    def detach_interface(self, uuid: str, nic: dict) -> None:
        """Hot-unplug a NIC; a NIC the VM does not have is not an error."""

    @abc.abstractmethod
    def snapshot(self, uuid: str, target: Path) -> None:
        """Write a self-contained copy of the VM's root disk (no backing file) to `target`,
        for an image upload; running or stopped. A VM that does not exist is an error."""

    def diagnostics(self, uuid: str) -> dict:
        """The VM's diagnostics in Nova's standard format (2.48): state, driver, hypervisor,
        hypervisor_os, uptime, config_drive, num_cpus/nics/disks, memory_details,
        cpu_details, nic_details, disk_details. A VM that is not running is an error."""
        raise SpawnError(f"{type(self).__name__} has no diagnostics")

    # ---- issue 13 (comp-a): pause, suspend, rebuild
    def pause(self, uuid: str) -> None:
        """Freeze the VM's vCPUs in memory (power state PAUSED)."""
        raise SpawnError(f"{type(self).__name__} cannot pause")

    def unpause(self, uuid: str) -> None:
        raise SpawnError(f"{type(self).__name__} cannot unpause")

    def suspend(self, uuid: str) -> None:
        """Save the VM's memory to disk and stop it (power state SUSPENDED)."""
        raise SpawnError(f"{type(self).__name__} cannot suspend")

    def resume(self, uuid: str) -> None:
        """Start a suspended VM from its saved memory."""
        raise SpawnError(f"{type(self).__name__} cannot resume")

    def rebuild(self, spec: InstanceSpec) -> None:
        """Give the VM a new root disk from `spec`'s image and a new config drive, keeping
        its NICs (the agent leaves them plugged): the VM and its files are made again."""
        self.destroy(spec.uuid)
        self.spawn(spec)
    # ---- end comp-a
    def resize(self, uuid: str, spec: InstanceSpec, power_on: bool) -> None:
        """Give the VM the vCPUs, memory and root disk size of `spec` (a cold resize: off
        while it happens; started again if `power_on`). A disk never shrinks. A driver
        that cannot resize raises (the conductor records the error)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resize")

    # ---- issue 15: volumes (capabilities.volume_attach)
    def attach_volume(self, uuid: str, volume: VolumeDevice | dict) -> str:
        """Attach a volume to the VM: to the running guest and its definition (hot attach),
        or to the definition only when it is off. `volume.device_name` None: the first free
        target is picked. Returns the target ("vdc"); attaching a volume the VM has already
        returns its target and changes nothing. A VolumeError says why it failed."""
        raise VolumeError(f"{type(self).__name__} cannot attach volumes")

    def detach_volume(self, uuid: str, volume_id: str, timeout: float | None = None) -> None:
        """Detach a volume; from a running guest, wait up to `timeout` s (None: the driver's
        default) for the guest to let go, else VolumeDetachTimeout. A volume the VM does not
        have (or a VM that is gone) is not an error."""
        raise VolumeError(f"{type(self).__name__} cannot detach volumes")

    def extend_volume(self, uuid: str, volume_id: str, new_size_gb: int) -> None:
        """Tell the VM an attached volume has grown to `new_size_gb` GiB (a running guest sees
        the new size at once). The volume service grows the volume itself; for a qcow2 file
        attached to a running VM this is what grows the file (QEMU holds it)."""
        raise VolumeError(f"{type(self).__name__} cannot extend volumes")

    def volume_targets(self, uuid: str) -> dict[str, str]:
        """Volume id -> target of the volumes the VM has (its definition)."""
        return {}
    # ---- end issue 15

    def expire_image_cache(self) -> None:
        """Remove cached images this host's instances no longer use (the agent calls it
        every `image_cache_interval` s); a driver without an image cache does nothing."""
        return None

    def power_state(self, uuid: str) -> int:
        return self.list_instances().get(uuid, NOSTATE)
