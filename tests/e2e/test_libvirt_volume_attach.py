"""A file volume attached to a running guest through the API, on real libvirt/QEMU (issue
15): `openstack server add volume` puts the volume's qcow2 in the running domain (and its
definition) at the first free target with the volume id as serial, Cinder shows it in-use, and `server remove
volume` takes it out again; extended while attached (3.42) the guest sees the new size. The
cloud is test_libvirt_cli.py's all-in-one (its own copy)."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e import test_libvirt_cli as base
from tests.e2e.conftest import unique
from tests.e2e.test_libvirt_cli import Images, LibvirtCloud, Networks, create_server, virsh

# test_libvirt_cli.py's module fixtures: this module gets its own all-in-one
cloud_root, cloud, images, networks = base.cloud_root, base.cloud, base.images, base.networks

pytestmark = pytest.mark.e2e


def _disks(server_id: str, inactive: bool = False) -> dict[str, str]:
    """`virsh domblklist`: target -> source."""
    flags = ["--inactive"] if inactive else []
    rows = virsh("domblklist", f"cirrus-{server_id}", *flags).splitlines()[2:]
    return {row.split()[0]: row.split()[1] for row in rows if row.strip()}


def test_a_file_volume_hot_attaches_to_a_running_guest_and_detaches(
        cloud: LibvirtCloud, images: Images, networks: Networks) -> None:
    cli = cloud.cli
    server = create_server(cli, images.plain, images.flavor, networks.static)
    sid = server["id"]
    # --property: OSC sends "metadata": null without one, which the volume API refuses
    volume = cli.json("volume", "create", "--size", "1", "--property", "purpose=e2e",
                      unique("data"))
    vid = volume["id"]
    for _ in range(300):
        if cli.json("volume", "show", vid)["status"] == "available":
            break
    else:
        raise AssertionError(f"volume {vid} never became available")

    cli.run("server", "add", "volume", sid, vid)
    shown = cli.json("volume", "show", vid)
    assert shown["status"] == "in-use"
    disks = _disks(sid)  # vdb may be the config drive: the first free target
    [target] = [dev for dev, src in disks.items() if re.search(rf"volume-{vid}\.qcow2$", src)]
    assert target in _disks(sid, inactive=True)  # the definition has it too
    listed = cli.json("server", "volume", "list", sid)
    assert f"/dev/{target}" in str(listed) and vid in str(listed)
    xml = virsh("dumpxml", f"cirrus-{sid}")
    assert f"<serial>{vid}</serial>" in xml
    attached = cli.json("server", "show", sid)["volumes_attached"]
    assert vid in str(attached)

    # online extend (3.42): QEMU grows the file volume it holds, the guest sees 2 GiB
    cli.run("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", vid)
    for _ in range(120):
        shown = cli.json("volume", "show", vid)
        if shown["status"] == "in-use" and shown["size"] == 2:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"volume {vid} not extended: {shown}")
    info = virsh("domblkinfo", f"cirrus-{sid}", target)
    assert re.search(r"^Capacity:\s+2147483648$", info, re.M), info

    cli.run("server", "remove", "volume", sid, vid)
    assert cli.json("volume", "show", vid)["status"] == "available"
    assert target not in _disks(sid)
    assert target not in _disks(sid, inactive=True)
    cli.run("server", "delete", "--wait", sid)
    cli.run("volume", "delete", vid)
