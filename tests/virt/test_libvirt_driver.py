"""LibvirtDriver on the real libvirtd of this machine (QEMU TCG): spawn, power, NIC hot-plug,
destroy without leftovers. Skipped when libvirtd is unreachable (failed under
CIRRUS_REQUIRE_SERVICES=1). Guests without an OS (a blank disk: SeaBIOS finds nothing to
boot) cover what needs no guest; the test guest of scripts/build-test-guest covers the
config drive, the guest agent and live NIC detach."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus import build_secrets
from cirrus.compute.states import NOSTATE, RUNNING, SHUTDOWN
from cirrus.config import Settings
from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.spec import ConfigDrive, ImageInfo
from tests.services import require_root
from tests.virt.conftest import store_image

pytestmark = pytest.mark.usefixtures("libvirt_available")
MIB = 1024**2


class Spawner:
    """A driver plus the instances a test made, destroyed at the end whatever happened."""

    def __init__(self, settings: Settings) -> None:
        from cirrus.virt.libvirt.driver import LibvirtDriver

        self.settings = settings
        self.driver = LibvirtDriver(settings, "test-host")
        self.uuids: list[str] = []

    def spec(self, image: dict, kernel: dict | None = None, ramdisk: dict | None = None,
             storage_pool: str | None = None, config_drive: bool = False,
             nics: list[dict] | None = None) -> InstanceSpec:
        instance = str(uuid.uuid4())
        self.uuids.append(instance)
        return InstanceSpec(uuid=instance, name=f"vm-{instance[:8]}", vcpus=1, memory_mb=128,
                            root_gb=1, image=ImageInfo.from_dict(image),
                            kernel=ImageInfo.from_dict(kernel) if kernel else None,
                            ramdisk=ImageInfo.from_dict(ramdisk) if ramdisk else None,
                            storage_pool=storage_pool,
                            config_drive=ConfigDrive(requested=config_drive),
                            nics=[Nic.from_dict(nic) for nic in nics or []])

    def blank_image(self) -> dict:
        return store_image(self.settings.effective_image_dir, b"\0" * MIB)

    def domain(self, instance: str):
        return self.driver._domain(instance)

    def cleanup(self) -> None:
        for instance in self.uuids:
            self.driver.destroy(instance)


@pytest.fixture
def spawner(libvirt_settings: Settings) -> Iterator[Spawner]:
    s = Spawner(libvirt_settings)
    yield s
    s.cleanup()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def assert_gone(spawner: Spawner, instance: str) -> None:
    """No domain, no instance directory in any pool, no lock or part file in the cache."""
    assert spawner.domain(instance) is None
    assert instance not in spawner.driver.list_instances()
    assert spawner.driver.pools.find_instance_dir(instance) is None
    cache = spawner.settings.effective_image_cache_dir
    hidden = [p.name for p in cache.iterdir() if p.name.startswith(".")] if cache.exists() else []
    assert hidden == []


def test_spawn_runs_a_domain_and_destroy_leaves_nothing_behind(spawner: Spawner) -> None:
    spec = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(spec)
    assert spawner.driver.list_instances()[spec.uuid] == RUNNING
    assert spawner.driver.power_state(spec.uuid) == RUNNING
    inst_dir = spawner.settings.effective_instances_dir / spec.uuid
    assert sorted(p.name for p in inst_dir.iterdir()) == ["cached-images.json", "console.log",
                                                          "disk.qcow2"]
    xml = spawner.domain(spec.uuid).XMLDesc(0)
    assert "<name>cirrus-" + spec.uuid in xml and "type='qemu'" in xml
    spawner.driver.destroy(spec.uuid)
    assert_gone(spawner, spec.uuid)
    spawner.driver.destroy(spec.uuid)  # again: nothing to do, no error
    assert spawner.driver.power_state(spec.uuid) == NOSTATE


def test_a_spawn_that_fails_leaves_nothing_behind(spawner: Spawner) -> None:
    image = spawner.blank_image()
    bad = spawner.spec({**image, "os_hash_value": "0" * 128})
    with pytest.raises(SpawnError, match="failed verification"):
        spawner.driver.spawn(bad)
    assert_gone(spawner, bad.uuid)
    no_pool = spawner.spec(image, storage_pool="nvme")
    with pytest.raises(SpawnError, match="'nvme' is not declared"):
        spawner.driver.spawn(no_pool)
    assert_gone(spawner, no_pool.uuid)


def test_a_server_goes_to_the_pool_it_asks_for(libvirt_settings: Settings,
                                               reachable_dir: Path) -> None:
    libvirt_settings.storage_pools = {"ssd": str(reachable_dir / "ssd")}
    spawner = Spawner(libvirt_settings)
    try:
        spec = spawner.spec(spawner.blank_image(), storage_pool="ssd")
        spawner.driver.spawn(spec)
        assert (reachable_dir / "ssd" / spec.uuid / "disk.qcow2").exists()
        assert "<cirrus:storage-pool>ssd<" in spawner.domain(spec.uuid).XMLDesc(0)
        spawner.driver.destroy(spec.uuid)
        assert not (reachable_dir / "ssd" / spec.uuid).exists()
    finally:
        spawner.cleanup()


def test_power_off_on_and_reboots(spawner: Spawner) -> None:
    """The blank guest ignores the ACPI button: power off waits libvirt_shutdown_timeout,
    then pulls the plug; a soft reboot falls back to a reset."""
    spec = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(spec)
    spawner.driver.power_off(spec.uuid)
    assert spawner.driver.power_state(spec.uuid) == SHUTDOWN
    spawner.driver.power_off(spec.uuid)  # already off
    spawner.driver.power_on(spec.uuid)
    assert spawner.driver.power_state(spec.uuid) == RUNNING
    spawner.driver.reboot(spec.uuid, hard=True)
    assert spawner.driver.power_state(spec.uuid) == RUNNING
    spawner.driver.reboot(spec.uuid, hard=False)
    assert spawner.driver.power_state(spec.uuid) == RUNNING
    spawner.driver.power_off(spec.uuid)
    spawner.driver.reboot(spec.uuid, hard=True)  # a hard reboot starts a stopped server
    assert spawner.driver.power_state(spec.uuid) == RUNNING


def test_operations_on_a_missing_instance_say_so(spawner: Spawner) -> None:
    with pytest.raises(SpawnError, match="no domain"):
        spawner.driver.power_on(str(uuid.uuid4()))
    assert spawner.driver.console_output(str(uuid.uuid4())) == ""


def test_a_closed_connection_is_opened_again(spawner: Spawner) -> None:
    spawner.driver.list_instances()
    spawner.driver._conn.close()
    assert isinstance(spawner.driver.list_instances(), dict)


def test_host_stats_describe_this_machine(spawner: Spawner) -> None:
    stats = spawner.driver.host_stats()
    assert stats.hypervisor_type == "QEMU"
    assert stats.vcpus == os.cpu_count()
    assert stats.memory_mb > 0 and stats.local_gb > 0
    assert stats.hypervisor_version > 1000000  # QEMU 7.2.0 is 7002000
    assert stats.cpu_info["arch"] == "x86_64"
    default_pool = stats.storage_pools["default"]  # reported for the scheduler
    assert 0 <= default_pool["free_gb"] <= default_pool["total_gb"] and default_pool["total_gb"] > 0


# ---- NICs: taps made by the agent's linuxbridge dataplane on this host (no uplink, no address)


def make_nic(index: int, dhcp: bool = True, address: str = "10.77.0.5") -> dict:
    port, network = uuid.uuid4().hex, "77" + uuid.uuid4().hex[2:]
    subnet = SubnetInfo(id="s-77", cidr="10.77.0.0/24", ip_version=4, gateway_ip="10.77.0.1",
                        enable_dhcp=dhcp)
    mac = f"fa:16:3e:77:{index:02x}:{int(port[:2], 16):02x}"
    return Nic(index=index, name=f"eth{index}", port_id=port, mac=mac, network_id=network,
               mtu=1400, fixed_ips=(FixedIp(address, subnet),)).to_dict()


@pytest.fixture
def dataplane() -> Iterator:
    require_root("taps and bridges")
    from cirrus.network.dataplane.firewall import Firewall
    from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane

    # No nftables on the host for these NIC tests (the firewall is tested in tests/network).
    plane = LinuxBridgeDataplane(firewall=Firewall())
    plugged: list[dict] = []

    def plug(nic: dict) -> dict:
        plane.plug(Nic.from_dict(nic))
        plugged.append(nic)
        return nic
    yield plug
    for nic in plugged:
        plane.unplug(nic["port_id"], nic["network_id"])


def macs(spawner: Spawner, instance: str, live: bool) -> list[str]:
    from cirrus.virt.libvirt.domain import interface_macs

    flags = 0 if live else 2  # VIR_DOMAIN_XML_INACTIVE
    return interface_macs(spawner.domain(instance).XMLDesc(flags))


def test_nics_at_spawn_and_hot_plugged(spawner: Spawner, dataplane) -> None:
    first, second = dataplane(make_nic(0)), dataplane(make_nic(1))
    spec = spawner.spec(spawner.blank_image(), nics=[first])
    spawner.driver.spawn(spec)
    assert macs(spawner, spec.uuid, live=True) == [first["mac"]]
    spawner.driver.attach_interface(spec.uuid, second)
    spawner.driver.attach_interface(spec.uuid, second)  # twice: still one
    assert macs(spawner, spec.uuid, live=True) == [first["mac"], second["mac"]]
    assert macs(spawner, spec.uuid, live=False) == [first["mac"], second["mac"]]
    # The blank guest has no OS to answer an ACPI unplug, so detach it while off.
    spawner.driver.power_off(spec.uuid)
    spawner.driver.detach_interface(spec.uuid, second)
    spawner.driver.detach_interface(spec.uuid, second)  # twice: nothing to do
    assert macs(spawner, spec.uuid, live=False) == [first["mac"]]
    spawner.driver.power_on(spec.uuid)
    assert macs(spawner, spec.uuid, live=True) == [first["mac"]]
    spawner.driver.destroy(spec.uuid)
    assert_gone(spawner, spec.uuid)


def drive_file(spawner: Spawner, instance: str, name: str) -> str:
    """A file of the instance's vfat config drive, read with mtools as a guest would see it."""
    from tests.unit.test_configdrive import mtools

    inst_dir = spawner.driver.pools.find_instance_dir(instance)
    return mtools("mtype", "-i", str(inst_dir / "disk.config"), f"::{name}").decode()


def drive_macs(spawner: Spawner, instance: str) -> list[str]:
    links = json.loads(drive_file(spawner, instance, "openstack/latest/network_data.json"))
    return [link["ethernet_mac_address"] for link in links["links"]]


def test_a_config_drive_is_made_again_for_nics_plugged_since(spawner: Spawner,
                                                             dataplane) -> None:
    first = dataplane(make_nic(0, dhcp=False, address="10.77.0.5"))
    second = dataplane(make_nic(1, dhcp=False, address="10.77.0.6"))
    spec = spawner.spec(spawner.blank_image(), config_drive=True, nics=[first])
    spec.config_drive = dataclasses.replace(spec.config_drive, build_secrets=build_secrets.seal(
        spawner.settings, spec.uuid, build_secrets.BuildSecrets("pw-on-the-drive")))  # as the API
    spawner.driver.spawn(spec)
    source = spawner.driver.pools.find_instance_dir(spec.uuid) / "disk.config.json"
    assert source.stat().st_mode & 0o777 == 0o600  # as private as the drive
    assert "pw-on-the-drive" not in source.read_text()  # the password stays sealed there
    assert drive_macs(spawner, spec.uuid) == [first["mac"]]
    dom = spawner.domain(spec.uuid)

    spawner.driver.reboot(spec.uuid, hard=True)  # nothing changed: a reset, same QEMU
    assert spawner.domain(spec.uuid).ID() == dom.ID()

    spawner.driver.attach_interface(spec.uuid, second, server_nics=[first, second])
    assert drive_macs(spawner, spec.uuid) == [first["mac"]]  # QEMU has it open: not yet
    spawner.driver.reboot(spec.uuid, hard=True)  # a new QEMU opens the new drive
    assert spawner.domain(spec.uuid).ID() != dom.ID()
    assert drive_macs(spawner, spec.uuid) == [first["mac"], second["mac"]]
    assert "iface eth1 inet static" in drive_file(spawner, spec.uuid, "cirrus/interfaces")
    meta = json.loads(drive_file(spawner, spec.uuid, "openstack/latest/meta_data.json"))
    assert meta["admin_pass"] == "pw-on-the-drive"  # the rest of the drive is as it was

    spawner.driver.power_off(spec.uuid)
    spawner.driver.detach_interface(spec.uuid, second)
    spawner.driver.power_on(spec.uuid)
    assert drive_macs(spawner, spec.uuid) == [first["mac"]]
    assert not json.loads(source.read_text())["stale"]
    spawner.driver.destroy(spec.uuid)
    assert_gone(spawner, spec.uuid)


# ---- the test guest: a real kernel, the config drive, the guest agent


def guest_images(spawner: Spawner, test_guest: tuple[Path, Path]) -> dict:
    store = spawner.settings.effective_image_dir
    kernel = store_image(store, test_guest[0], "aki")
    ramdisk = store_image(store, test_guest[1], "ari")
    root = store_image(store, b"\0" * MIB, "raw", {
        "kernel_id": kernel["id"], "ramdisk_id": ramdisk["id"],
        "os_command_line": "console=ttyS0", "support_inject_ip": "true"})
    return {"image": root, "kernel": kernel, "ramdisk": ramdisk}


def agent_macs(spawner: Spawner, instance: str) -> list[str]:
    """MACs the guest itself sees, asked through the QEMU guest agent."""
    import libvirt

    try:
        found = spawner.domain(instance).interfaceAddresses(
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT)
    except libvirt.libvirtError:
        return []  # the agent is not up yet
    return sorted((iface.get("hwaddr") or "").lower() for iface in found.values())


def test_a_real_guest_gets_its_config_drive_and_nics(libvirt_settings: Settings,
                                                     test_guest: tuple[Path, Path],
                                                     dataplane) -> None:
    libvirt_settings.libvirt_shutdown_timeout = 60.0
    spawner = Spawner(libvirt_settings)
    try:
        first = dataplane(make_nic(0, dhcp=False, address="10.77.0.5"))
        second = dataplane(make_nic(1, dhcp=False, address="10.77.0.6"))
        spec = spawner.spec(config_drive=True, nics=[first], **guest_images(spawner,
                                                                           test_guest))
        spawner.driver.spawn(spec)
        inst_dir = libvirt_settings.effective_instances_dir / spec.uuid
        assert (inst_dir / "disk.config").exists()
        console = wait_for(lambda: (lambda out: out if "cirrus-report: end" in out else "")(
            spawner.driver.console_output(spec.uuid)), 120, "the guest's report")
        assert "cirrus-guest: network ready in" in console
        assert "inet 10.77.0.5/24" in console
        assert f"cirrus-report: hostname {spec.name}" in console
        assert spawner.driver.console_output(spec.uuid, length=1).count("\n") == 1

        spawner.driver.attach_interface(spec.uuid, second)
        wait_for(lambda: second["mac"] in agent_macs(spawner, spec.uuid), 60,
                 "the guest to see the hot-plugged NIC")
        spawner.driver.detach_interface(spec.uuid, second)  # the guest releases it
        assert second["mac"] not in macs(spawner, spec.uuid, live=True)
        assert second["mac"] not in agent_macs(spawner, spec.uuid)

        started = time.monotonic()
        spawner.driver.power_off(spec.uuid)
        print(f"clean power off took {time.monotonic() - started:.1f} s")
        assert spawner.driver.power_state(spec.uuid) == SHUTDOWN
        spawner.driver.destroy(spec.uuid)
        assert_gone(spawner, spec.uuid)
    finally:
        spawner.cleanup()


def test_snapshots_are_flat_copies_of_the_root_disk(spawner: Spawner,
                                                    reachable_dir: Path) -> None:
    import subprocess

    image = store_image(spawner.settings.effective_image_dir, b"data" * MIB)
    spec = spawner.spec(image)
    spawner.driver.spawn(spec)
    disk = spawner.settings.effective_instances_dir / spec.uuid / "disk.qcow2"
    for state, target in (("running", reachable_dir / "live.qcow2"),
                          ("stopped", reachable_dir / "cold.qcow2")):
        if state == "stopped":
            spawner.driver.power_off(spec.uuid)
        spawner.driver.snapshot(spec.uuid, target)
        info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(target)],
                              capture_output=True, text=True, check=True).stdout
        assert '"backing-filename"' not in info and '"format": "qcow2"' in info, state
        same = subprocess.run(["qemu-img", "compare", "-U", str(target), str(disk)],
                              capture_output=True, text=True, check=False)
        assert same.returncode == 0, f"{state}: {same.stdout}{same.stderr}"
    assert sorted(p.name for p in disk.parent.iterdir()) == ["cached-images.json",
                                                             "console.log", "disk.qcow2"]
    assert spawner.driver.power_state(spec.uuid) == SHUTDOWN


def test_each_host_lists_only_the_domains_in_its_own_pools(spawner: Spawner,
                                                           reachable_dir: Path) -> None:
    """Two clouds (or a test beside a cloud) on one libvirtd: neither reports, so neither
    conductor destroys, the other's domains."""
    other_settings = Settings(data_dir=reachable_dir / "other", virt_type="qemu",
                              libvirt_uri=spawner.settings.libvirt_uri)
    other = Spawner(other_settings)
    try:
        mine = spawner.spec(spawner.blank_image())
        theirs = other.spec(other.blank_image())
        spawner.driver.spawn(mine)
        other.driver.spawn(theirs)
        assert mine.uuid in spawner.driver.list_instances()
        assert theirs.uuid not in spawner.driver.list_instances()
        assert theirs.uuid in other.driver.list_instances()
        assert mine.uuid not in other.driver.list_instances()
    finally:
        other.cleanup()


# ---- image cache expiry


def age_cache(spawner: Spawner, seconds: float) -> list[str]:
    """Make every cached image look last used `seconds` ago; their ids."""
    cache = spawner.settings.effective_image_cache_dir
    then = time.time() - seconds
    ids = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    for image_id in ids:
        os.utime(cache / image_id, (then, then))
    return ids


def cached(spawner: Spawner) -> list[str]:
    cache = spawner.settings.effective_image_cache_dir
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_image_cache_expiry_keeps_the_images_of_instances_and_removes_the_rest(
        spawner: Spawner, test_guest: tuple[Path, Path]) -> None:
    """A direct-kernel-boot instance keeps its root, kernel and ramdisk cached however old,
    also when its use record is gone (read from its disk and domain); destroyed, they go."""
    images = guest_images(spawner, test_guest)
    spec = spawner.spec(**images)
    spawner.driver.spawn(spec)
    unused = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(unused)
    spawner.driver.destroy(unused.uuid)
    wanted = sorted(images[part]["id"] for part in ("image", "kernel", "ramdisk"))
    assert cached(spawner) == sorted([*wanted, unused.image.id])
    age_cache(spawner, 2 * 86400)
    spawner.driver.expire_image_cache()
    assert cached(spawner) == wanted  # the destroyed instance's image went

    inst_dir = spawner.settings.effective_instances_dir / spec.uuid
    (inst_dir / "cached-images.json").unlink()  # as made before records existed
    age_cache(spawner, 2 * 86400)
    spawner.driver.expire_image_cache()
    assert cached(spawner) == wanted

    spawner.driver.destroy(spec.uuid)
    age_cache(spawner, 2 * 86400)
    spawner.settings.image_cache_max_age = 0  # disabled: nothing goes
    spawner.driver.expire_image_cache()
    assert cached(spawner) == wanted
    spawner.settings.image_cache_max_age = 86400
    spawner.driver.expire_image_cache()
    assert cached(spawner) == []


def test_image_cache_expiry_keeps_what_an_instance_in_another_pool_uses(
        libvirt_settings: Settings, reachable_dir: Path) -> None:
    libvirt_settings.storage_pools = {"ssd": str(reachable_dir / "ssd")}
    spawner = Spawner(libvirt_settings)
    try:
        spec = spawner.spec(spawner.blank_image(), storage_pool="ssd")
        spawner.driver.spawn(spec)
        assert age_cache(spawner, 2 * 86400) == [spec.image.id]
        spawner.driver.expire_image_cache()
        assert cached(spawner) == [spec.image.id]
    finally:
        spawner.cleanup()
