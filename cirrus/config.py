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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


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
    # Token signing keys (docs/security.md): a directory outside the database, 0700, one
    # 0600 file per key, the same on every API host; `cirrus token-keys rotate` rotates them.
    token_key_dir: str = ""  # empty: <data_dir>/keys/token
    token_max_active_keys: int = 3  # staged + primary + secondaries kept by a rotation
    # Passwords (Keystone's [identity] max_password_length and [security_compliance]);
    # every rule but the length bound is off by default, as in Keystone.
    max_password_length: int = 4096
    lockout_failure_attempts: int = 0  # failed logins before a lockout; 0: never locked
    lockout_duration: int = 1800  # seconds a lockout lasts; 0: until an admin enables the user
    password_expires_days: int = 0  # days a password is valid; 0: forever
    password_regex: str = ""  # a new password must match this (re.match); empty: anything
    password_regex_description: str = ""  # said in the 400 when password_regex refuses one
    unique_last_password_count: int = 0  # a new password differs from this many last ones
    minimum_password_age: int = 0  # days before a user may change their own password again
    change_password_upon_first_use: bool = False  # a new or admin-reset password must be changed
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
    # Fernet keys sealing a build's admin password and injected files (docs/security.md);
    # the same file on every API and agent host. Empty: <data_dir>/keys/build-secrets.key
    build_secrets_key_file: str = ""
    # Fernet keys sealing Keystone credential blobs and sensitive domain-config options
    # (docs/security.md, "Identity secrets"). Empty: <data_dir>/keys/credentials.key
    credential_key_file: str = ""
    task_timeout: float = 600.0  # seconds before any other task state is cleared
    # Seconds a SHELVED server keeps its host before it is offloaded (Nova's name);
    # 0: at once, -1: never (only an admin's shelveOffload frees the host).
    shelved_offload_time: float = 0.0
    # Resize (Nova's names): a resize may stay on its host (tests have few hosts); seconds
    # before a resize left in VERIFY_RESIZE is confirmed automatically (0: never).
    allow_resize_to_same_host: bool = True
    resize_confirm_window: float = 0.0
    rpc_timeout: float = 60.0
    db_reconnect_timeout: float = 30.0  # seconds a transaction waits out an unreachable database
    task_redrive_after: float = 120.0  # seconds before the conductor re-sends a stalled task
    # Nova's name: seconds a deleted server stays soft-deleted (restorable) before the
    # conductor reclaims it; 0: a DELETE deletes at once.
    reclaim_instance_interval: int = 0
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
    # URL prefixes an image `import` task may fetch from (server-side request forgery guard);
    # empty: none, every such task fails without fetching (docs/configuration.md).
    image_import_allowed_url_prefixes: list[str] = field(default_factory=list)
    # Request limits at the API edge (docs/security.md, "Request limits"); 0 turns one off.
    max_json_body_size: int = 1048576  # bytes of any body but image data; larger: 413
    image_size_cap: int = 1099511627776  # bytes of one image's data (Glance's name); larger: 413
    max_json_depth: int = 32  # nesting of arrays and objects in a JSON body; deeper: 400
    max_json_string_length: int = 65535  # characters of one JSON string or key; longer: 400
    max_header_size: int = 65536  # bytes of all request header names and values; more: 431
    max_header_line: int = 16384  # bytes of one header's value; longer: 431
    max_token_size: int = 8192  # bytes of X-Auth-Token or X-Subject-Token; longer: 401
    max_url_length: int = 16384  # bytes of the path and query string; longer: 414
    max_query_params: int = 1000  # parameters in one query string; more: 400
    # Networking: the host dataplane of an agent, and what `networks: auto` makes.
    network_dataplane: str = "noop"  # or "linuxbridge"
    # Security groups (issue 14, sg): how linuxbridge enforces them, "nftables" or "noop".
    firewall_driver: str = "nftables"
    default_network_mtu: int = 1500
    auto_network_cidr: str = "10.0.0.0/24"  # each project's own `auto` network (isolated L2)
    auto_network_dns: list[str] = field(default_factory=list)
    # ---- L2 network types and the host uplinks (issue 14, l2; docs/networking.md)
    # What a member's network gets (the first type that has a free id); empty: no
    # segment (a bridge with no uplink, as before network types).
    tenant_network_types: list[str] = field(default_factory=lambda: ["vxlan"])
    vxlan_vni_ranges: list[str] = field(default_factory=lambda: ["1:65535"])  # "low:high"
    # Physical networks for vlan: "physnet" (provider networks only) or
    # "physnet:low:high" (also a range for tenant vlan networks).
    network_vlan_ranges: list[str] = field(default_factory=list)
    flat_networks: list[str] = field(default_factory=lambda: ["*"])  # "*": any physnet
    # Agent side: physnet -> interface of this host ("physnet1=eth1" in the environment),
    # and this host's VTEP address on the overlay underlay (empty: no vxlan here).
    physical_interface_mappings: dict[str, str] = field(default_factory=dict)
    overlay_local_ip: str = ""
    quota_network: int = 100
    quota_subnet: int = 100
    quota_port: int = 500
    quota_security_group: int = 10
    quota_security_group_rule: int = 100
    # L3 (routers and floating IPs; issue 14): Neutron's quota names and defaults.
    quota_router: int = 10
    quota_floatingip: int = 50
    # DHCP (issue 14, dhcp; docs/networking.md "DHCP"). dhcp_agent: this host's agent runs
    # dnsmasq for the networks given to it (on in `cirrus all-in-one --virt-driver libvirt`);
    # the others are the control side's: how many hosts serve each network, and what
    # dnsmasq hands out (lease in seconds, -1 infinite; the domain of the guests' names).
    dhcp_agent: bool = False
    dhcp_hosts_per_network: int = 2
    dhcp_lease_duration: int = 86400
    dhcp_domain: str = "openstacklocal"
    # Routers on the hosts (issue 14, l3; docs/networking.md "Routers on the hosts"):
    # l3_agent: this host's agent runs the routers scheduled to it (a qrouter namespace
    # each); on in `cirrus all-in-one --virt-driver libvirt`.
    l3_agent: bool = False
    # Block storage (issue 15; docs/volumes.md). volume_backends: name -> "KIND[:OPTIONS]"
    # (kinds: file, rbd, fake); empty: {"file": "file"}, qcow2 files under <data_dir>/volumes.
    # A volume type picks one by its `volume_backend_name` extra spec, else
    # default_volume_backend (empty: the first).
    volume_backends: dict[str, str] = field(default_factory=dict)
    default_volume_backend: str = ""
    # Block-storage quotas per project (Cinder's defaults; -1 is unlimited) and how long a
    # volume or snapshot may stay creating/deleting/extending before the sweeper ends it.
    quota_volumes: int = 10
    quota_gigabytes: int = 1000
    quota_snapshots: int = 10
    quota_per_volume_gigabytes: int = -1
    volume_task_timeout: float = 600.0
    # Boot from volume (issue 15): seconds a build waits for a volume it makes from a block
    # device mapping to become available before the server goes ERROR.
    boot_volume_timeout: float = 180.0
    # The external network `cirrus all-in-one --virt-driver libvirt` makes if none of that
    # name exists (flat, on the physical network of the same name, no DHCP); "": none.
    all_in_one_external_network: str = "public"
    all_in_one_external_cidr: str = "172.24.4.0/24"
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
    # Files and shutdown (docs/security.md): everything written 0600/0700, or 0640/2750 to
    # this group; SIGTERM stops the process within shutdown_timeout seconds.
    file_group: str = ""  # empty: files only Cirrus's user reads
    shutdown_timeout: float = 10.0
    # HTTPS served directly by the API (docs/deployment.md): PEM files; both or neither.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_self_signed: bool = False  # all-in-one: make <data_dir>/tls/ on first start if unset
    fake: FakeHostSettings = field(default_factory=FakeHostSettings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'cirrus.db'}"

    @property
    def effective_public_url(self) -> str:
        scheme = "https" if self.tls_cert_file or self.tls_self_signed else "http"
        return (self.public_url or f"{scheme}://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def effective_token_key_dir(self) -> Path:
        return (Path(self.token_key_dir) if self.token_key_dir
                else Path(self.data_dir) / "keys" / "token")

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


def _apply(target: DataclassInstance, values: dict, prefix: str = "") -> None:
    for f in dataclasses.fields(target):
        if f.name not in values:
            continue
        current = getattr(target, f.name)
        value = values[f.name]
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
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


def _env_overrides(target: DataclassInstance, prefix: str = "CIRRUS_") -> None:
    for f in dataclasses.fields(target):
        current = getattr(target, f.name)
        name = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
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
