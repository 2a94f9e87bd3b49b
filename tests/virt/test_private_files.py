"""QEMU and private files together (issue 11, point 8; docs/libvirt.md "File permissions"):
`cirrus all-in-one --virt-driver libvirt` on a data directory made by `mktemp -d` (0700)
under umask 0077 boots a real guest, although QEMU runs as libvirt's unprivileged user, and
nothing of the instance is readable by any other user. One boot (~10 s under TCG)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt import access
from tests.services import require_root
from tests.virt.conftest import LIBVIRT_URI

BOOT_TIMEOUT = 90.0
GUEST_UP = re.compile(r"^cirrus-guest: ", re.M)  # the test guest's /init, on the console
CMDLINE = "console=ttyS0 quiet panic=-1"


@pytest.fixture
def private_data_dir(libvirt_available: None) -> Iterator[Path]:
    """What `mktemp -d` gives: a 0700 directory in /tmp, made under umask 0077."""
    from tests.e2e.test_libvirt_cli import require_host
    from tests.virt.domains import destroy_leftover_domains

    require_host()
    old = os.umask(0o077)
    try:
        path = Path(tempfile.mkdtemp(prefix="cirrus-private-"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    yield path
    destroy_leftover_domains(LIBVIRT_URI, path)
    shutil.rmtree(path, ignore_errors=True)


def loose(root: Path) -> list[str]:
    """Every path under `root` (itself included) that a user other than its owner and QEMU's
    group can use, or whose group may list or write a directory (traversal only)."""
    found = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o007:
            found.append(f"{path} {mode:04o} (others)")
        elif stat.S_ISDIR(st.st_mode) and mode & 0o060:
            found.append(f"{path} {mode:04o} (group may list or write)")
    return found


@pytest.mark.e2e
def test_a_guest_boots_from_a_private_data_dir_under_umask_0077(private_data_dir: Path) -> None:
    from tests.e2e.conftest import Cli, start_all_in_one, stop_all_in_one, unique, wait_for_status
    from tests.guest.qemu import build_test_guest

    kernel, initrd = build_test_guest()
    data_dir = private_data_dir
    old = os.umask(0o077)  # the all-in-one inherits it, as every Cirrus process will have it
    try:
        aio = start_all_in_one(data_dir, args=["--virt-driver", "libvirt"],
                               env={"CIRRUS_VIRT_TYPE": "qemu", "CIRRUS_LIBVIRT_URI": LIBVIRT_URI})
    finally:
        os.umask(old)
    try:
        cli = Cli(aio.clouds_yaml)
        root_disk = data_dir / "upload-root.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root_disk), "64M"],
                       check=True)
        kernel_id = cli.json("image", "create", "--disk-format", "aki", "--container-format",
                             "aki", "--file", str(kernel), unique("kernel"))["id"]
        ramdisk_id = cli.json("image", "create", "--disk-format", "ari", "--container-format",
                              "ari", "--file", str(initrd), unique("ramdisk"))["id"]
        image = cli.json("image", "create", "--disk-format", "qcow2", "--container-format",
                         "bare", "--file", str(root_disk), "--property", f"kernel_id={kernel_id}",
                         "--property", f"ramdisk_id={ramdisk_id}",
                         "--property", f"os_command_line={CMDLINE}", unique("guest"))["id"]
        root_disk.unlink()
        flavor = cli.json("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1",
                          unique("tiny"))["id"]
        server = cli.json("server", "create", "--config-drive", "True", "--nic", "none",
                          "--flavor", flavor, "--image", image, unique("vm"))
        wait_for_status(cli, server["id"], "ACTIVE", timeout=BOOT_TIMEOUT)  # else: its fault

        deadline = time.monotonic() + BOOT_TIMEOUT
        text = ""
        while not GUEST_UP.search(text) and time.monotonic() < deadline:
            time.sleep(1.0)
            text = cli.run("console", "log", "show", server["id"]).stdout
        assert GUEST_UP.search(text), f"the guest did not boot; console:\n{text[-2000:]}"

        inst_dir = data_dir / "instances" / server["id"]
        assert {p.name for p in inst_dir.iterdir()} >= {"disk.qcow2", "disk.config",
                                                        "console.log"}
        problems = loose(data_dir)
        assert not problems, problems
        cli.run("server", "delete", "--wait", server["id"])
        assert not inst_dir.exists()
    finally:
        code = stop_all_in_one(aio)
    assert code == 0, aio.log_tail()


# ---------------------------------------------------------------- the rules, without libvirt

CAPS = """<capabilities><host><uuid>x</uuid>
  <secmodel><model>none</model><doi>0</doi></secmodel>
  <secmodel><model>dac</model><doi>0</doi>
    <baselabel type='kvm'>+64055:+64055</baselabel>
    <baselabel type='qemu'>+64056:+113</baselabel></secmodel>
</host></capabilities>"""


def test_qemus_user_comes_from_libvirts_dac_label() -> None:
    assert (access.qemu_user(CAPS, "kvm").uid, access.qemu_user(CAPS, "kvm").gid) == (
        64055, 64055)
    assert (access.qemu_user(CAPS, "qemu").uid, access.qemu_user(CAPS, "qemu").gid) == (
        64056, 113)
    as_root = CAPS.replace("+64055:+64055", "+0:+0")
    assert access.qemu_user(as_root, "kvm") is None  # QEMU as root needs no help
    session = "<capabilities><host><secmodel><model>none</model></secmodel></host></capabilities>"
    assert access.qemu_user(session, "kvm") is None


@pytest.fixture
def nobody() -> access.QemuUser:
    require_root("changing a directory's group to another user's")
    return access.QemuUser.of(pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)


@pytest.fixture
def tmp_in_tmp() -> Iterator[Path]:
    """A 0700 directory whose parents QEMU's user can traverse (/tmp), as `mktemp -d`."""
    path = Path(tempfile.mkdtemp(prefix="cirrus-access-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_way_to_an_instance_is_traversal_only_for_qemus_group(nobody, tmp_in_tmp) -> None:
    data = tmp_in_tmp
    pool, cache = data / "instances", data / "instances" / "_base"
    qemu = access.QemuAccess(nobody, data, [pool, cache])
    inst = qemu.private_dir(pool / "some-uuid")
    qemu.private_dir(cache)
    for directory in (inst, pool, cache):
        st = directory.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o710, nobody.gid), directory
    st = data.stat()  # the data directory only given search: 0700 -> 0710
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o710, nobody.gid)
    assert all(nobody.can_traverse(p.stat()) for p in (inst, *inst.parents))
    (data / "keys").mkdir(mode=0o700)
    assert not nobody.can_traverse((data / "keys").stat())  # what QEMU needs, nothing else


def test_a_pool_made_loose_is_closed_again(nobody, tmp_in_tmp) -> None:
    pool = tmp_in_tmp / "pool"
    pool.mkdir(mode=0o755)
    os.chmod(pool, 0o777)
    access.QemuAccess(nobody, tmp_in_tmp, [pool]).private_dir(pool / "u")
    assert stat.S_IMODE(pool.stat().st_mode) == 0o710


def test_a_directory_not_cirruss_is_named_not_changed(nobody, tmp_path) -> None:
    """pytest's tmp_path lies under a 0700 directory of root's that is not Cirrus's."""
    data = tmp_path / "data"
    qemu = access.QemuAccess(nobody, data, [data / "instances"])
    with pytest.raises(SpawnError, match=r"cannot traverse /.* \(mode 0700"):
        qemu.private_dir(data / "instances" / "u")
    assert stat.S_IMODE(tmp_path.parent.stat().st_mode) == 0o700


def test_without_a_qemu_user_everything_is_0700(tmp_in_tmp) -> None:
    pool = tmp_in_tmp / "pool"
    access.QemuAccess(None, tmp_in_tmp, [pool]).private_dir(pool / "u")
    assert stat.S_IMODE((pool / "u").stat().st_mode) == 0o700
    assert stat.S_IMODE(pool.stat().st_mode) == 0o700
