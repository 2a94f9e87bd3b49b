"""Issue 13 (comp-x): the libvirt driver's server diagnostics on a real QEMU domain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cirrus.config import Settings
from cirrus.virt.driver import SpawnError
from tests.virt.test_libvirt_driver import Spawner

pytestmark = pytest.mark.usefixtures("libvirt_available")


@pytest.fixture
def spawner(libvirt_settings: Settings) -> Iterator[Spawner]:
    s = Spawner(libvirt_settings)
    yield s
    s.cleanup()


def test_diagnostics_of_a_running_domain(spawner: Spawner) -> None:
    driver = spawner.driver
    spec = spawner.spec(spawner.blank_image(), config_drive=True)
    driver.spawn(spec)
    diag = driver.diagnostics(spec.uuid)
    assert diag["state"] == "running" and diag["driver"] == "libvirt"
    assert diag["hypervisor"] == driver.virt_type
    assert diag["num_cpus"] == spec.vcpus == len(diag["cpu_details"])
    assert diag["memory_details"]["maximum"] == spec.memory_mb
    assert diag["config_drive"] is True
    assert diag["num_disks"] == len(diag["disk_details"]) == 2  # root disk, config drive
    assert all(isinstance(d["read_requests"], int) for d in diag["disk_details"])
    assert diag["num_nics"] == len(spec.nics) == len(diag["nic_details"])
    driver.power_off(spec.uuid)
    with pytest.raises(SpawnError):
        driver.diagnostics(spec.uuid)
    driver.destroy(spec.uuid)
