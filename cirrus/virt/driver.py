"""The one boundary to a hypervisor. Every driver (fake, libvirt) implements this."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class InstanceSpec:
    """What a driver needs to build one VM: plain data from the conductor."""

    uuid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    image_ref: str | None = None
    user_data: str | None = None
    key_data: str | None = None
    metadata: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    # cirrus.network.model.Nic.to_dict() of each NIC, in guest order; the agent plugs them
    # into the host's dataplane before the driver starts the VM.
    nics: list = field(default_factory=list)


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


class SpawnError(Exception):
    """The hypervisor could not build the VM; the message is shown in the server's fault."""


class VirtDriver(abc.ABC):
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

    def expire_image_cache(self) -> None:
        """Remove cached images this host's instances no longer use (the agent calls it
        every `image_cache_interval` s); a driver without an image cache does nothing."""
        return None

    def power_state(self, uuid: str) -> int:
        from cirrus.compute.states import NOSTATE

        return self.list_instances().get(uuid, NOSTATE)
