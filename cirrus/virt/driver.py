"""The one boundary to a hypervisor. Every driver (fake, libvirt) implements this."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cirrus.virt.power import NOSTATE
from cirrus.virt.spec import InstanceSpec

__all__ = ["DriverCapabilities", "HostStats", "InstanceSpec", "SpawnError", "VirtDriver"]


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

    def expire_image_cache(self) -> None:
        """Remove cached images this host's instances no longer use (the agent calls it
        every `image_cache_interval` s); a driver without an image cache does nothing."""
        return None

    def power_state(self, uuid: str) -> int:
        return self.list_instances().get(uuid, NOSTATE)
