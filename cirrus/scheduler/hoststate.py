"""What the scheduler knows about one host and what one request needs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HostState:
    node_id: int
    host: str
    node: str
    availability_zone: str
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    service_up: bool
    service_disabled: bool
    disabled_reason: str | None = None
    # Pool name -> {"total_gb", "free_gb"} from the agent's last full report; {}: not reported.
    storage_pools: dict = field(default_factory=dict)

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio - self.vcpus_used

    @property
    def free_ram_mb(self) -> float:
        return self.memory_mb * self.ram_allocation_ratio - self.memory_mb_used

    @property
    def free_disk_gb(self) -> float:
        return self.local_gb * self.disk_allocation_ratio - self.local_gb_used


@dataclass
class RequestSpec:
    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    exclude_hosts: list[str] = field(default_factory=list)
    storage_pool: str | None = None  # None: the host's default pool
    # An admin's forced destination (Nova's force_hosts/force_nodes): only it is considered.
    force_host: str | None = None
    force_node: str | None = None
    task: str | None = None  # None: a build; "unshelving": an unshelve (claims.place)

    @classmethod
    def from_dict(cls, data: dict) -> RequestSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
