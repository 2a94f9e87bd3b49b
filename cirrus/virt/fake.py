"""FAKE virt driver: simulated VMs for tests and for simulating hundreds of hosts.

Nothing runs: a VM is a record in memory, saved to `<data_dir>/fake-hosts/<host>.json` so a
restarted agent finds the VMs its host "still runs". Boot delay, failure rate and capacity
are settings (`[fake]` in the config file, CIRRUS_FAKE_* in the environment).

Storage pools are simulated too: every host has `default` (local_gb), and `fake.storage_pools`
adds pools to all hosts or to every N-th one, so a simulation can mix storage tiers. A pool's
free space is its size less the root disks of the VMs in it; a spawn into a pool the host
lacks fails as it does on libvirt.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from pathlib import Path

from cirrus import build_secrets
from cirrus.config import FakeHostSettings, Settings
from cirrus.storage.pools import DEFAULT_POOL
from cirrus.virt.driver import (
    DriverCapabilities,
    HostStats,
    InstanceSpec,
    SpawnError,
    VirtDriver,
    VolumeDetachTimeout,
    VolumeError,
    volume_device,
)
from cirrus.virt.power import NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from cirrus.virt.spec import VolumeDevice
from cirrus.virt.targets import assign_targets

log = logging.getLogger(__name__)


def simulated_pools(host: str, options: FakeHostSettings) -> dict[str, int]:
    """Pool name -> size in GB on simulated host `host`: `default` of `local_gb`, plus each
    `fake.storage_pools` entry ("GB": every host; "GB/N": hosts whose name ends in a multiple
    of N, e.g. fake-3, fake-6 for N=3)."""
    number = re.search(r"(\d+)$", host)
    pools = {DEFAULT_POOL: options.local_gb}
    for name, value in options.storage_pools.items():
        size, _, every = value.partition("/")
        try:
            gb, n = int(size), int(every or 1)
        except ValueError:
            gb, n = -1, 0
        if gb < 0 or n < 1:
            raise ValueError(f"fake.storage_pools: {name} = {value!r} is not GB or GB/N "
                             "(e.g. '100' on every host, '100/3' on every third host)")
        if n == 1 or (number is not None and int(number.group(1)) % n == 0):
            pools[name] = gb
    return pools


class FakeDriver(VirtDriver):
    # A test sets another on its driver (then has the agent report) to play a host that
    # cannot, e.g., hot-plug.
    capabilities = DriverCapabilities(hot_plug_nic=True, snapshot=True, balloon=False,
                                      volume_attach=True)
    # Volume ids whose detach a "guest" never lets go of (a test's way to play one).
    stuck_volumes: set[str] = set()

    def __init__(self, host: str, options: FakeHostSettings, state_dir: Path | None = None,
                 settings: Settings | None = None) -> None:
        """`settings`: to open the build secrets (key file) as the libvirt driver does for
        its config drive, so a host without the API's key fails its builds here too; None:
        they are not looked at."""
        self.host = host
        self.options = options
        self.settings = settings
        self.pools = simulated_pools(host, options)  # checked now: a bad setting fails at start
        self._lock = threading.Lock()
        self._path = (state_dir / f"{host}.json") if state_dir else None
        self._vms: dict[str, dict] = {}
        if self._path and self._path.exists():
            self._vms = json.loads(self._path.read_text())

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._vms))
        tmp.replace(self._path)

    def host_stats(self) -> HostStats:
        return HostStats(hypervisor_type="fake", hypervisor_version=1000, vcpus=self.options.vcpus,
                         memory_mb=self.options.memory_mb, local_gb=self.options.local_gb,
                         cpu_info={"arch": "x86_64", "model": "fake", "vendor": "Cirrus",
                                   "topology": {"cores": self.options.vcpus, "threads": 1,
                                                "sockets": 1}, "features": []},
                         storage_pools=self._pool_capacity(),
                         capabilities=self.capabilities.to_dict())

    def _pool_capacity(self) -> dict[str, dict[str, int]]:
        """As StoragePools.capacity(): a root disk counts whole, as if fully written."""
        used = dict.fromkeys(self.pools, 0)
        with self._lock:
            for vm in self._vms.values():
                pool = vm.get("storage_pool", DEFAULT_POOL)
                if pool in used:
                    used[pool] += vm.get("root_gb", 0)
        return {name: {"total_gb": size, "free_gb": max(0, size - used[name])}
                for name, size in self.pools.items()}

    def list_instances(self) -> dict[str, int]:
        with self._lock:
            return {uuid: vm["power_state"] for uuid, vm in self._vms.items()}

    def _log(self, vm: dict, line: str) -> None:
        vm["console"].append(f"[{time.time() - vm['booted_at']:10.6f}] {line}")

    def spawn(self, spec: InstanceSpec) -> None:
        pool = spec.storage_pool or DEFAULT_POOL
        if pool not in self.pools:
            raise SpawnError(f"fake driver on {self.host}: storage pool {pool!r} is not declared "
                             f"(it has: {', '.join(sorted(self.pools))})")
        secrets = build_secrets.BuildSecrets()
        if self.settings is not None:
            try:
                secrets = spec.open_build_secrets(self.settings)
            except build_secrets.BuildSecretsError as exc:
                log.error("spawn of %s on %s: %s", spec.uuid, self.host, exc)
                raise SpawnError(f"fake driver on {self.host}: {build_secrets.UNOPENABLE}") from exc
        if self.options.boot_delay > 0:
            time.sleep(self.options.boot_delay)
        if self.options.failure_rate > 0 and random.random() < self.options.failure_rate:
            raise SpawnError(f"fake driver on {self.host}: simulated spawn failure")
        with self._lock:
            vm: dict = {"name": spec.name, "power_state": RUNNING, "booted_at": time.time(),
                        "console": [], "nics": [n.port_id for n in spec.nics],
                        "storage_pool": pool, "root_gb": spec.root_gb, "vcpus": spec.vcpus,
                        "memory_mb": spec.memory_mb, "macs": {n.port_id: n.mac for n in spec.nics}}
            self._log(vm, f"Booting fake guest {spec.name} ({spec.vcpus} vCPU, {spec.memory_mb} MB)")
            if secrets:  # what a guest's cloud-init says, never the secrets themselves
                self._log(vm, f"config drive: admin password {'set' if secrets.admin_pass else 'none'}"
                              f", {len(secrets.injected_files)} file(s) injected")
            local = {"vda"} if spec.boot_volume() is None else set()
            volumes: dict[str, dict] = {}
            for dev, target in assign_targets(spec.volumes, local):
                volumes[dev.volume_id] = _volume_record(dev, target)
                self._log(vm, f"{target}: volume {dev.volume_id} ({dev.driver_volume_type})"
                              + (", boot" if dev.boot_index == 0 else ""))
            vm["volumes"] = volumes
            self._log(vm, f"{spec.name} login:")
            self._vms[spec.uuid] = vm
            self._save()

    def destroy(self, uuid: str) -> None:
        with self._lock:
            if self._vms.pop(uuid, None) is not None:
                self._save()

    def _set_power(self, uuid: str, state: int, line: str,
                   when: tuple[int, ...] | None = None) -> None:
        with self._lock:
            vm = self._vms.get(uuid)
            if vm is None:
                raise SpawnError(f"fake driver on {self.host}: no VM {uuid}")
            if when is not None and vm["power_state"] not in when:
                raise SpawnError(f"fake driver on {self.host}: {uuid} is in power state "
                                 f"{vm['power_state']}, not {when}")
            vm["power_state"] = state
            self._log(vm, line)
            self._save()

    def power_off(self, uuid: str) -> None:
        self._set_power(uuid, SHUTDOWN, "reboot: Power down")

    def power_on(self, uuid: str) -> None:
        self._set_power(uuid, RUNNING, "Booting fake guest")

    def reboot(self, uuid: str, hard: bool) -> None:
        self._set_power(uuid, RUNNING, "reboot: hard reset" if hard else "reboot: Restarting system")

    # ---- comp-a: pause and suspend are state flags here
    def pause(self, uuid: str) -> None:
        self._set_power(uuid, PAUSED, "paused", when=(RUNNING,))

    def unpause(self, uuid: str) -> None:
        self._set_power(uuid, RUNNING, "unpaused", when=(PAUSED,))

    def suspend(self, uuid: str) -> None:
        self._set_power(uuid, SUSPENDED, "PM: suspend to disk", when=(RUNNING,))

    def resume(self, uuid: str) -> None:
        self._set_power(uuid, RUNNING, "PM: resumed from disk", when=(SUSPENDED,))
    # ---- end comp-a

    def attach_interface(self, uuid: str, nic: dict,
                         server_nics: list[dict] | None = None) -> None:
        with self._lock:
            vm = self._vm(uuid)
            if nic["port_id"] not in vm.setdefault("nics", []):
                vm["nics"].append(nic["port_id"])
                self._log(vm, f"{nic['name']}: link up ({nic['mac']})")
                self._save()

    def detach_interface(self, uuid: str, nic: dict) -> None:
        with self._lock:
            vm = self._vm(uuid)
            if nic["port_id"] in vm.get("nics", []):
                vm["nics"].remove(nic["port_id"])
                self._log(vm, f"{nic['name']}: removed")
                self._save()

    # ---- issue 15: volumes, recorded in the VM's record ("volumes": id -> record)
    def attach_volume(self, uuid: str, volume: VolumeDevice | dict) -> str:
        dev = volume_device(volume)
        with self._lock:
            vm = self._volume_vm(uuid)
            volumes = vm.setdefault("volumes", {})
            if dev.volume_id in volumes:
                return str(volumes[dev.volume_id]["target"])
            used = {"vda"} | {v["target"] for v in volumes.values()}
            if dev.device_name and dev.device_name in used:
                raise VolumeError(f"fake driver on {self.host}: volume {dev.volume_id}: "
                                  f"device {dev.device_name} of {uuid} is in use")
            [(_, target)] = assign_targets([dev], used)
            volumes[dev.volume_id] = _volume_record(dev, target)
            self._log(vm, f"{target}: volume {dev.volume_id} attached")
            self._save()
            return target

    def detach_volume(self, uuid: str, volume_id: str, timeout: float | None = None) -> None:
        with self._lock:
            vm = self._vms.get(uuid)
            if vm is None or volume_id not in vm.get("volumes", {}):
                return
            if volume_id in self.stuck_volumes and vm["power_state"] == RUNNING:
                raise VolumeDetachTimeout(f"the guest of {uuid} did not release volume "
                                          f"{volume_id} within {timeout or 0:.0f} s")
            record = vm["volumes"].pop(volume_id)
            self._log(vm, f"{record['target']}: volume {volume_id} detached")
            self._save()

    def extend_volume(self, uuid: str, volume_id: str, new_size_gb: int) -> None:
        with self._lock:
            vm = self._volume_vm(uuid)
            record = vm.get("volumes", {}).get(volume_id)
            if record is None:
                raise VolumeError(f"fake driver on {self.host}: volume {volume_id} is not "
                                  f"attached to {uuid}")
            if new_size_gb < int(record.get("size_gb") or 0):
                raise VolumeError(f"fake driver on {self.host}: volume {volume_id} would "
                                  f"shrink to {new_size_gb} GiB")
            record["size_gb"] = new_size_gb
            self._log(vm, f"{record['target']}: volume {volume_id} now {new_size_gb} GiB")
            self._save()

    def volume_targets(self, uuid: str) -> dict[str, str]:
        with self._lock:
            vm = self._volume_vm(uuid)
            return {vid: str(r["target"]) for vid, r in vm.get("volumes", {}).items()}

    def volumes(self, uuid: str) -> dict[str, dict]:
        """What the fake VM has recorded of its volumes (for tests)."""
        with self._lock:
            return json.loads(json.dumps(self._vm(uuid).get("volumes", {})))
    def _volume_vm(self, uuid: str) -> dict:
        vm = self._vms.get(uuid)
        if vm is None:
            raise VolumeError(f"fake driver on {self.host}: no VM {uuid}")
        return vm
    # ---- end issue 15

    def _vm(self, uuid: str) -> dict:
        vm = self._vms.get(uuid)
        if vm is None:
            raise SpawnError(f"fake driver on {self.host}: no VM {uuid}")
        return vm

    def snapshot(self, uuid: str, target: Path) -> None:
        """A few bytes naming the VM stand in for its disk, so tests can check the upload."""
        with self._lock:
            vm = self._vm(uuid)
            self._log(vm, "snapshot taken")
            data = snapshot_bytes(uuid, vm["name"])
        target.write_bytes(data)

    def resize(self, uuid: str, spec: InstanceSpec, power_on: bool) -> None:
        """The record takes the new size (a root disk only grows), as a cold resize."""
        with self._lock:
            vm = self._vm(uuid)
            vm["root_gb"] = max(vm.get("root_gb", 0), spec.root_gb)
            vm["vcpus"], vm["memory_mb"] = spec.vcpus, spec.memory_mb
            vm["power_state"] = RUNNING if power_on else SHUTDOWN
            self._log(vm, f"resized to {spec.vcpus} vCPU, {spec.memory_mb} MB, "
                          f"{vm['root_gb']} GB")
            self._save()

    def console_output(self, uuid: str, length: int | None = None) -> str:
        with self._lock:
            vm = self._vms.get(uuid)
            lines = list(vm["console"]) if vm else []
        if length is not None:
            lines = lines[-length:] if length > 0 else []
        return "\n".join(lines) + ("\n" if lines else "")

    def diagnostics(self, uuid: str) -> dict:
        """Counters a fake VM would have: zeros, its uptime and its shape. Nova's fake driver
        reports itself as `libvirt` (the API's enum has no `fake`), and so does this one."""
        with self._lock:
            vm = self._vm(uuid)
            if vm["power_state"] != RUNNING:
                raise SpawnError(f"fake driver on {self.host}: {uuid} is not running")
            macs = vm.get("macs", {})
            nics = [{"mac_address": macs.get(port), "rx_octets": 0, "rx_errors": 0,
                     "rx_drop": 0, "rx_packets": 0, "rx_rate": None, "tx_octets": 0,
                     "tx_errors": 0, "tx_drop": 0, "tx_packets": 0, "tx_rate": None}
                    for port in vm["nics"]]
            vcpus, memory_mb = int(vm.get("vcpus", 1)), int(vm.get("memory_mb", 0))
            return {"state": "running", "driver": "libvirt", "hypervisor": "fake",
                    "hypervisor_os": "cirrus-fake", "uptime": int(time.time() - vm["booted_at"]),
                    "config_drive": True, "num_cpus": vcpus, "num_nics": len(nics),
                    "num_disks": 1,
                    "memory_details": {"maximum": memory_mb, "used": 0},
                    "cpu_details": [{"id": i, "time": 0, "utilisation": None}
                                    for i in range(vcpus)],
                    "nic_details": nics,
                    "disk_details": [{"read_bytes": 0, "read_requests": 0, "write_bytes": 0,
                                      "write_requests": 0, "errors_count": 0}]}

    def power_state(self, uuid: str) -> int:
        with self._lock:
            vm = self._vms.get(uuid)
            return vm["power_state"] if vm else NOSTATE


def _volume_record(dev: VolumeDevice, target: str) -> dict:
    """What the fake VM keeps of an attached volume (never the connection's secrets: there
    are none in it, only a keyring path)."""
    return {"target": target, "bus": dev.bus, "driver_volume_type": dev.driver_volume_type,
            "read_only": dev.read_only, "qos": dev.qos.limits(), "boot_index": dev.boot_index,
            "size_gb": 0}


def snapshot_bytes(uuid: str, name: str) -> bytes:
    """What the fake driver writes as a snapshot of VM `uuid` named `name`."""
    return f"cirrus fake snapshot of {uuid} ({name})\n".encode()
