"""Settings: defaults, then an optional TOML file, then CIRRUS_* environment variables.

Every option lives in `Settings` with its default; docs/configuration.md lists them.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeHostSettings:
    """Capacity and behaviour of the simulated hosts of the fake virt driver."""

    count: int = 3
    vcpus: int = 16
    memory_mb: int = 65536
    local_gb: int = 1000
    boot_delay: float = 0.0
    failure_rate: float = 0.0
    # Simulated storage pools besides `default` (local_gb): name -> "GB" on every host, or
    # "GB/N" on every N-th host (fake-N, fake-2N, ...), so simulated hosts differ in tiers.
    storage_pools: dict[str, str] = field(default_factory=dict)


@dataclass
class Settings:
    data_dir: Path = Path("./cirrus-data")
    database_url: str = ""  # empty: sqlite:///<data_dir>/cirrus.db
    api_host: str = "127.0.0.1"
    api_port: int = 8774
    public_url: str = ""  # empty: http://<api_host>:<api_port>
    region: str = "RegionOne"
    log_level: str = "INFO"
    log_file: str = ""  # empty: stderr
    token_ttl: int = 3600
    admin_user: str = "admin"
    admin_password: str = ""  # empty on first start: generated and written to clouds.yaml
    admin_project: str = "admin"
    virt_driver: str = "fake"  # or "libvirt"
    # The libvirt driver (docs/libvirt.md).
    virt_type: str = "auto"  # "kvm", "qemu" (TCG), or "auto": kvm if a KVM guest really runs
    libvirt_uri: str = "qemu:///system"
    libvirt_instances_dir: str = ""  # empty: <data_dir>/instances (the pool "default")
    libvirt_image_cache_dir: str = ""  # empty: <instances dir>/_base
    image_cache_max_age: float = 86400.0  # seconds unused before a cached image goes; <= 0 never
    image_cache_interval: float = 2400.0  # seconds between an agent's cache expiry passes
    libvirt_shutdown_timeout: float = 30.0  # seconds a guest gets to power off cleanly
    storage_pools: dict[str, str] = field(default_factory=dict)  # name -> directory
    config_drive_format: str = "vfat"  # or "iso9660"
    force_config_drive: bool = False
    default_availability_zone: str = "nova"
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    scheduler_host_subset_size: int = 1
    build_max_attempts: int = 3
    build_timeout: float = 600.0  # seconds before a BUILD is given up and set to ERROR
    task_timeout: float = 600.0  # seconds before any other task state is cleared
    rpc_timeout: float = 60.0
    db_reconnect_timeout: float = 30.0  # seconds a transaction waits out an unreachable database
    task_redrive_after: float = 120.0  # seconds before the conductor re-sends a stalled task
    service_down_time: float = 60.0
    heartbeat_interval: float = 10.0
    sync_interval: float = 60.0
    quota_instances: int = 10
    quota_cores: int = 20
    quota_ram: int = 51200
    quota_key_pairs: int = 100
    quota_metadata_items: int = 128
    # The most servers one create may make (max_count above it makes this many; min_count
    # above it is a 400), so a request's work stays bounded even under unlimited quotas.
    max_servers_per_request: int = 100
    image_dir: str = ""  # empty: <data_dir>/images
    # Networking: the host dataplane of an agent, and what `networks: auto` makes.
    network_dataplane: str = "noop"  # or "linuxbridge"
    default_network_mtu: int = 1500
    auto_network_cidr: str = "10.0.0.0/24"  # each project's own `auto` network (isolated L2)
    auto_network_dns: list[str] = field(default_factory=list)
    quota_network: int = 100
    quota_subnet: int = 100
    quota_port: int = 500
    quota_security_group: int = 10
    quota_security_group_rule: int = 100
    # Production mode (`cirrus serve`): the broker and this process's host name.
    broker_urls: list[str] = field(default_factory=list)  # empty: the in-process bus
    amqp_heartbeat: float = 30.0  # seconds; 0 turns AMQP heartbeats off
    amqp_queue_prefix: str = "cirrus."  # queues and exchanges: one cloud per prefix/vhost
    amqp_queue_type: str = "classic"  # or "quorum" (replicated, for a RabbitMQ cluster)
    amqp_publish_timeout: float = 0.0  # seconds to get a broker's confirm; 0: rpc_timeout
    tcp_keepalive: bool = True
    tcp_keepidle: int = 60  # seconds idle before the first keepalive probe
    tcp_keepintvl: int = 10  # seconds between probes
    tcp_keepcnt: int = 9  # unanswered probes before the connection is dropped
    tcp_user_timeout: float = 30.0  # seconds unacknowledged data may wait before a drop
    host_name: str = ""  # empty: socket.gethostname()
    fake: FakeHostSettings = field(default_factory=FakeHostSettings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'cirrus.db'}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def effective_image_dir(self) -> Path:
        return Path(self.image_dir) if self.image_dir else Path(self.data_dir) / "images"

    @property
    def effective_instances_dir(self) -> Path:
        return (Path(self.libvirt_instances_dir) if self.libvirt_instances_dir
                else Path(self.data_dir) / "instances")

    @property
    def effective_image_cache_dir(self) -> Path:
        return (Path(self.libvirt_image_cache_dir) if self.libvirt_image_cache_dir
                else self.effective_instances_dir / "_base")

    @property
    def effective_storage_pools(self) -> dict[str, Path]:
        """Every storage pool of this host: `storage_pools`, plus the instances directory as
        `default` unless storage_pools names a `default` of its own."""
        pools = {"default": self.effective_instances_dir}
        pools.update({name: Path(path) for name, path in self.storage_pools.items()})
        return pools

    @property
    def effective_host_name(self) -> str:
        return self.host_name or socket.gethostname()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _split_list(value: str) -> list[str]:
    """`a, b,,c` -> ["a", "b", "c"]: how a list setting is written in one variable."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _split_table(value: str) -> dict[str, str]:
    """`ssd=/srv/ssd, hdd=/srv/hdd` -> {"ssd": "/srv/ssd", "hdd": "/srv/hdd"}: how a table
    setting is written in one variable."""
    table = {}
    for item in _split_list(value):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"{value!r} is not a list of name=value pairs")
        table[name.strip()] = path.strip()
    return table


def _coerce(value: str, current: object) -> object:
    if isinstance(current, bool):
        text = value.strip().lower()
        if text not in _TRUE + _FALSE:
            raise ValueError(f"{value!r} is not a boolean (use true or false)")
        return text in _TRUE
    if isinstance(current, list):
        return _split_list(value)
    if isinstance(current, dict):
        return _split_table(value)
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    return value


def _apply(target: object, values: dict, prefix: str = "") -> None:
    for f in dataclasses.fields(target):
        if f.name not in values:
            continue
        current = getattr(target, f.name)
        value = values[f.name]
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting {prefix}{f.name} must be a table")
            _apply(current, value, prefix=f"{prefix}{f.name}.")
        elif isinstance(value, str) and not isinstance(current, str):
            setattr(target, f.name, _coerce(value, current))
        elif isinstance(current, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"setting {prefix}{f.name} must be a list of strings")
            setattr(target, f.name, [v.strip() for v in value if v.strip()])
        elif isinstance(current, dict):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(f"setting {prefix}{f.name} must be a table of strings")
            setattr(target, f.name, {str(k): v for k, v in value.items()})
        elif isinstance(current, bool) and not isinstance(value, bool):
            raise ValueError(f"setting {prefix}{f.name} must be true or false")
        else:
            setattr(target, f.name, type(current)(value) if current is not None else value)


def _env_overrides(target: object, prefix: str = "CIRRUS_") -> None:
    for f in dataclasses.fields(target):
        current = getattr(target, f.name)
        name = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(current):
            _env_overrides(current, prefix=f"{name}_")
        elif name in os.environ:
            setattr(target, f.name, _coerce(os.environ[name], current))


def load_settings(config_file: str | os.PathLike | None = None, **overrides: object) -> Settings:
    """Build settings: defaults < config file < environment < explicit overrides."""
    settings = Settings()
    path = config_file or os.environ.get("CIRRUS_CONFIG")
    if path:
        with open(path, "rb") as fh:
            _apply(settings, tomllib.load(fh))
    _env_overrides(settings)
    _apply(settings, {k: v for k, v in overrides.items() if v is not None})
    return settings
