"""`cirrus all-in-one --virt-driver libvirt`: one agent, this machine, a real hypervisor."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from cirrus.cli import build_parser
from cirrus.config import Settings
from cirrus.runtime import all_in_one_host_names


def test_the_flag_sets_the_driver() -> None:
    args = build_parser().parse_args(["all-in-one", "--virt-driver", "libvirt"])
    assert args.virt_driver == "libvirt"
    assert build_parser().parse_args(["all-in-one"]).virt_driver is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["all-in-one", "--virt-driver", "xen"])


def test_a_real_driver_runs_one_agent_named_after_the_machine() -> None:
    assert all_in_one_host_names(Settings(virt_driver="libvirt")) == [socket.gethostname()]
    assert all_in_one_host_names(Settings(virt_driver="libvirt", host_name="hv-1")) == ["hv-1"]
    assert all_in_one_host_names(Settings()) == ["fake-1", "fake-2", "fake-3"]


@pytest.mark.e2e
@pytest.mark.usefixtures("libvirt_available")
def test_the_all_in_one_reports_this_machine_as_a_qemu_hypervisor(reachable_dir: Path) -> None:
    from tests.e2e.conftest import Cli, start_all_in_one, stop_all_in_one

    server = start_all_in_one(reachable_dir / "data",
                              env={"CIRRUS_VIRT_DRIVER": "libvirt", "CIRRUS_VIRT_TYPE": "qemu"})
    try:
        cli = Cli(server.clouds_yaml)
        deadline = time.monotonic() + 30
        while not (hypervisors := cli.json("hypervisor", "list")) and time.monotonic() < deadline:
            time.sleep(0.5)  # the agent's first report is on its way to the conductor
        assert [(h["Hypervisor Hostname"], h["Hypervisor Type"], h["State"])
                for h in hypervisors] == [(socket.gethostname(), "QEMU", "up")]
    finally:
        code = stop_all_in_one(server)
    assert code == 0, server.log_tail()
