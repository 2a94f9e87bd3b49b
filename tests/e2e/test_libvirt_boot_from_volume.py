"""Boot from volume on real libvirt/QEMU (issue 15): `openstack server create --image ...
--boot-from-volume 1 --delete-on-termination` makes a file volume from the test image through
the volume role, attaches it before the spawn, and the guest boots from it: the domain's vda
is the volume's qcow2 (its serial the volume id) and there is no local root disk; the guest
finishes its boot (its report on the console). Deleting the server deletes the volume. One
guest boot. The cloud is test_libvirt_cli.py's all-in-one (its own copy)."""

from __future__ import annotations

import re

import pytest

from tests.e2e import test_libvirt_cli as base
from tests.e2e.conftest import unique
from tests.e2e.test_libvirt_cli import Images, LibvirtCloud, Networks, virsh, wait_for_boots

# test_libvirt_cli.py's module fixtures: this module gets its own all-in-one
cloud_root, cloud, images, networks = base.cloud_root, base.cloud, base.images, base.networks

pytestmark = pytest.mark.e2e


def test_a_guest_boots_from_a_file_volume_made_from_the_image(
        cloud: LibvirtCloud, images: Images, networks: Networks) -> None:
    cli = cloud.cli
    server = cli.json("server", "create", "--wait", "--config-drive", "True", "--flavor",
                      images.flavor, "--image", images.plain, "--boot-from-volume", "1",
                      "--delete-on-termination", "--nic", f"net-id={networks.static}",
                      unique("bfv"))
    sid = server["id"]
    shown = cli.json("server", "show", sid)
    assert shown["status"] == "ACTIVE"
    assert not shown["image"] or "booted from volume" in str(shown["image"]).lower()
    [vid] = re.findall(r"[0-9a-f-]{36}", str(shown["volumes_attached"]))
    volume = cli.json("volume", "show", vid)
    assert volume["status"] == "in-use" and str(volume["bootable"]).lower() == "true"
    assert volume["size"] == 1

    rows = virsh("domblklist", f"cirrus-{sid}").splitlines()[2:]
    disks = {row.split()[0]: row.split()[1] for row in rows if row.strip()}
    assert re.search(rf"volume-{vid}\.qcow2$", disks["vda"]), disks
    assert not any(src.endswith("/disk") or src.endswith("disk.qcow2")
                   for src in disks.values()), disks  # no local root disk
    xml = virsh("dumpxml", f"cirrus-{sid}")
    assert f"<serial>{vid}</serial>" in xml
    assert re.search(r"<boot order=['\"]1['\"]", xml), xml

    wait_for_boots(cli, sid, 1)  # the guest's kernel and /init ran from the volume's boot

    cli.run("server", "delete", "--wait", sid)
    for _ in range(200):
        if cli.run("volume", "show", vid, check=False).returncode != 0:
            break
    else:
        raise AssertionError(f"volume {vid} not deleted with its server")
