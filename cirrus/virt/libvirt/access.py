"""QEMU and private files together (docs/libvirt.md, "File permissions").

libvirt's system instance runs QEMU as an unprivileged user (Debian: libvirt-qemu, uid and
group 64055). With `dynamic_ownership` (libvirt's default) libvirt itself gives every file
of a domain to that user while the domain runs (root disk and its backing images, config
drive, kernel, initrd, console log) and gives it back when it stops; Cirrus's files can stay
0600. What libvirt does not do is open the *directories* on the way: QEMU must be able to
traverse every directory from `/` to each file, and a data directory made by `mktemp -d` or
left private (0700, as Cirrus makes it) is closed to it ("Cannot access storage file ...
(as uid:64055, gid:64055): Permission denied").

So the directories QEMU passes through are traversal-only for QEMU's group, and closed to
everyone else:

- Cirrus's own directories on the way (storage pool directories, instance directories in
  them, the image cache): mode 0710, group QEMU's group. QEMU may open a file whose name it
  knows; it cannot list them; others get nothing.
- The data directory (and any directory between it and a pool), when QEMU cannot traverse
  it: QEMU's group is given search (`g+x`, the group set to QEMU's when the directory's
  group has no rights yet), nothing else changes: 0700 becomes 0710.
- A directory above those that QEMU cannot traverse is not Cirrus's to change: the build
  fails with a message naming it.

QEMU's user and group come from libvirt's capabilities (`<secmodel><model>dac</model>
<baselabel type='kvm'>+64055:+64055</baselabel>`), so a host whose qemu.conf names another
user needs nothing more. When QEMU runs as root or as Cirrus's own user (qemu:///session),
every directory is simply 0700.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from cirrus.virt.driver import SpawnError

PRIVATE_DIR = 0o700
QEMU_DIR = 0o710  # owner all; QEMU's group: traverse only; others: nothing


@dataclass(frozen=True)
class QemuUser:
    uid: int
    gid: int
    groups: frozenset[int]  # its primary group and supplementary groups

    @classmethod
    def of(cls, uid: int, gid: int) -> QemuUser:
        """libvirt starts QEMU with the supplementary groups of its user, as login does."""
        groups = {gid}
        try:
            groups.update(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except KeyError:
            pass
        return cls(uid, gid, frozenset(groups))

    def can_traverse(self, st: os.stat_result) -> bool:
        mode = st.st_mode
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(mode & stat.S_IXUSR)
        if st.st_gid in self.groups:
            return bool(mode & stat.S_IXGRP)
        return bool(mode & stat.S_IXOTH)


def qemu_user(capabilities_xml: str, virt_type: str) -> QemuUser | None:
    """QEMU's user for domains of `virt_type` ("kvm" or "qemu"), from libvirt's capabilities;
    None when it needs no help: no DAC security model (qemu:///session), or QEMU runs as root
    or as this process's user."""
    host = ET.fromstring(capabilities_xml).find("host")
    for model in host.findall("secmodel") if host is not None else []:
        if (model.findtext("model") or "").strip() != "dac":
            continue
        labels = {label.get("type"): (label.text or "").strip()
                  for label in model.findall("baselabel")}
        label = labels.get(virt_type) or labels.get("kvm") or labels.get("qemu")
        if not label or ":" not in label:
            continue
        uid, gid = (_id(part, lookup) for part, lookup in
                    zip(label.split(":", 1), (_uid_of, _gid_of), strict=True))
        if uid in (0, os.geteuid()):
            return None
        return QemuUser.of(uid, gid)
    return None


def _id(text: str, lookup) -> int:
    """libvirt writes `+64055` for a number; a name is looked up."""
    text = text.strip()
    return int(text[1:]) if text.startswith("+") else (int(text) if text.isdigit() else lookup(text))


def _uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def _gid_of(name: str) -> int:
    return grp.getgrnam(name).gr_gid


class QemuAccess:
    """Makes Cirrus's directories reachable by QEMU's user `user` (None: QEMU needs no help)
    and by nobody else. `managed`: the directories that are Cirrus's alone, they and all
    below them (storage pools, the image cache); `data_dir`: Cirrus's too, but only opened
    for QEMU's search (its mode is the data directory's business, not the driver's)."""

    def __init__(self, user: QemuUser | None, data_dir: Path, managed: list[Path]) -> None:
        self.user = user
        self.data_dir = Path(os.path.abspath(data_dir))
        self.managed = [Path(os.path.abspath(p)) for p in managed]

    def private_dir(self, path: Path) -> Path:
        """Make directory `path` (in a storage pool or the image cache; QEMU opens files in
        it) and make the way to it: `path` and the directories up to its pool or cache
        directory 0710 with QEMU's group (0700 when QEMU needs no help); the data directory
        and those between given QEMU's search if they lack it; a directory above them that
        QEMU cannot traverse is a SpawnError naming it."""
        path = Path(os.path.abspath(path))
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        roots = [r for r in self.managed if path == r or r in path.parents]
        root = max(roots, key=lambda r: len(r.parts)) if roots else None
        for directory in [path, *path.parents]:
            if root is not None and (directory == root or root in directory.parents):
                self._set(directory)
            elif self.user is not None:
                self._open(self.user, directory, owned=directory == self.data_dir
                           or self.data_dir in directory.parents)
        return path

    def reach_file(self, path: Path) -> None:
        """Let QEMU reach a file Cirrus does not keep in a pool (a file volume, its backing
        files): every directory above it gets QEMU's search as the data directory does
        (g+x with QEMU's group when Cirrus owns it and QEMU's group had no rights there);
        libvirt lends QEMU the file itself. A directory QEMU cannot traverse and Cirrus
        may not open is a SpawnError naming it."""
        if self.user is None:
            return
        path = Path(os.path.abspath(path))
        for directory in path.parents:
            self._open(self.user, directory, owned=directory == self.data_dir
                       or self.data_dir in directory.parents)

    def _set(self, directory: Path) -> None:
        """Exactly 0710 with QEMU's group (0700 when QEMU needs no help)."""
        st = directory.stat()
        if self.user is None:
            if stat.S_IMODE(st.st_mode) != PRIVATE_DIR:
                os.chmod(directory, PRIVATE_DIR)
            return
        if st.st_gid != self.user.gid:
            os.chown(directory, -1, self.user.gid)
        if stat.S_IMODE(st.st_mode) != QEMU_DIR:
            os.chmod(directory, QEMU_DIR)

    @staticmethod
    def _open(user: QemuUser, directory: Path, owned: bool) -> None:
        """Give QEMU's group search on `directory` if QEMU cannot traverse it yet."""
        st = directory.stat()
        if user.can_traverse(st):
            return
        mode = stat.S_IMODE(st.st_mode)
        group_free = st.st_gid in user.groups or not mode & 0o070
        if owned and group_free and st.st_uid == os.geteuid():
            if st.st_gid not in user.groups:
                os.chown(directory, -1, user.gid)
            os.chmod(directory, mode | stat.S_IXGRP)
            return
        raise SpawnError(
            f"QEMU's user (uid {user.uid}, gid {user.gid}) cannot traverse "
            f"{directory} (mode {mode:04o}, uid {st.st_uid}, gid {st.st_gid}) on the way to "
            "the instance's files: give it search permission there (docs/libvirt.md, "
            "\"File permissions\")")
