"""Private files: the umask, the modes Cirrus creates files and directories with, and the
start-up check that warns about any path under the data directory looser than that.

Everything Cirrus writes (database and its WAL/SHM, images, logs, clouds.yaml, keys, config
drives, instance files) is readable by the user Cirrus runs as and nobody else: files 0600,
directories 0700. With `file_group` set (a group the operator names, e.g. for a backup agent
or a log shipper), files are 0640 and directories 2750 owned by that group instead; the
setgid bit makes everything created below them inherit the group.

`apply(settings)` is called once at process start by every `cirrus` command; the helpers
(`make_dirs`, `create_private`, `write_private`) are for code that must not depend on the
umask alone (a library or a test that did not go through the command line).

The libvirt driver keeps instance disks, config drives and consoles reachable by QEMU's
group (docs/libvirt.md): `permit_group_access(path)` tells the check that group bits are
expected under `path` (never bits for others); with virt_driver = libvirt every storage
pool directory is permitted so.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from cirrus.config import Settings

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
GROUP_UMASK = 0o027
FILE_MODE = 0o600  # what apply() leaves: 0o640 with a file group
DIR_MODE = 0o700  # 0o2750 with a file group
CHECK_LIMIT = 10000  # paths the start-up check looks at, at most
WARN_LIMIT = 20  # warning lines it writes, at most; then one summary line

_state = threading.Lock()
_group_gid: int | None = None
_group_ok: list[Path] = []


class FileGroupError(ValueError):
    """`file_group` names no group of this machine."""


def group_id(name: str) -> int:
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise FileGroupError(f"file_group {name!r} is not a group of this machine "
                             "(getent group NAME); leave it empty for files only this "
                             "user reads") from None


def apply(settings: Settings) -> None:
    """Set this process's umask and the modes for `settings.file_group` (empty: private)."""
    global FILE_MODE, DIR_MODE, _group_gid
    name = getattr(settings, "file_group", "") or ""
    if name:
        gid = group_id(name)
        with _state:
            FILE_MODE, DIR_MODE, _group_gid = 0o640, 0o2750, gid
        os.umask(GROUP_UMASK)
    else:
        with _state:
            FILE_MODE, DIR_MODE, _group_gid = 0o600, 0o700, None
        os.umask(PRIVATE_UMASK)
    if getattr(settings, "virt_driver", "") == "libvirt":
        for pool in settings.effective_storage_pools.values():
            permit_group_access(pool)


def permit_group_access(path: Path | str) -> None:
    """Group read/traverse bits are expected at and under `path` (the libvirt instances
    directory: QEMU reaches disks through its group). Others' bits are still reported."""
    resolved = Path(path).resolve()
    with _state:
        if resolved not in _group_ok:
            _group_ok.append(resolved)


def _group_permitted(path: Path, mode: int = 0o070, is_dir: bool = False) -> bool:
    """Group bits are expected at or under a permitted path; above one (the data directory
    holding the instances directory), a directory may let the group traverse it only."""
    with _state:
        permitted = list(_group_ok)
    if any(path == p or p in path.parents for p in permitted):
        return True
    return is_dir and mode & 0o070 == 0o010 and any(path in p.parents for p in permitted)


def _fix_group(path: Path, fd: int | None = None) -> None:
    if _group_gid is None:
        return
    with contextlib.suppress(OSError):  # not a member of the group: the check will say so
        if fd is not None:
            os.fchown(fd, -1, _group_gid)
        else:
            os.chown(path, -1, _group_gid)


def make_dirs(path: Path | str) -> Path:
    """mkdir -p with DIR_MODE for every directory it makes (not for ones already there)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
            os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask; setgid is dropped
            _fix_group(d)
    return path


def private_dir(path: Path | str) -> Path:
    """The data directory: made if missing, and tightened to DIR_MODE if it is ours."""
    path = make_dirs(path)
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)
            _fix_group(path)
    return path


def create_private(path: Path | str, exclusive: bool = False, secret: bool = False) -> int:
    """Open `path` for writing, created with FILE_MODE whatever the umask (a `secret`:
    0600 even with a file group); a file descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    mode = 0o600 if secret else FILE_MODE
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)
        if not secret:
            _fix_group(Path(path), fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path | str, data: bytes | str, secret: bool = False) -> None:
    """Write a whole file that is never readable by others, not even for an instant. A
    `secret` (a password, a private key) stays 0600 even with a file group."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = create_private(tmp, secret=secret)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def touch_private(path: Path | str) -> None:
    """Create `path` empty with FILE_MODE unless it exists (SQLite then keeps its mode for
    the database and gives the same to its -wal and -shm files)."""
    path = Path(path)
    if path.exists():
        return
    make_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(create_private(path, exclusive=True))


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a sqlite URL, else None. Parsed as SQLAlchemy's make_url does,
    without importing SQLAlchemy: the start-up check runs in agent-only processes too."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme.partition("+")[0] != "sqlite":
        return None
    _host, slash, database = rest.partition("?")[0].partition("/")
    database = unquote(database)
    if not slash or not database or database == ":memory:":
        return None
    return Path(database)


# ---------------------------------------------------------------- the start-up check


def looseness(path: Path, st: os.stat_result) -> str | None:
    """Why `path` is looser than Cirrus leaves it, or None."""
    mode = stat.S_IMODE(st.st_mode)
    is_dir = stat.S_ISDIR(st.st_mode)
    if mode & 0o007:
        return f"mode {mode:04o}: others can {'list or enter' if is_dir else 'read or write'} it"
    if not mode & 0o070:
        return None
    if _group_permitted(path, mode, is_dir):
        return None
    if _group_gid is not None and st.st_gid == _group_gid and not mode & 0o020:
        return None  # the operator's file_group may read it
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"mode {mode:04o}: group {group} can {'list or enter' if is_dir else 'read'} it"


def _candidates(settings: Settings) -> list[Path]:
    data_dir = Path(settings.data_dir)
    paths = [data_dir]
    db = sqlite_path(settings.effective_database_url)
    if db is not None:
        paths += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    if settings.log_file:
        paths.append(Path(settings.log_file))
    paths.append(settings.effective_image_dir)
    for extra in ("tls_key_file", "tls_cert_file"):
        if getattr(settings, extra, ""):
            paths.append(Path(getattr(settings, extra)))
    return paths


def check_tree(settings: Settings, limit: int = CHECK_LIMIT) -> list[tuple[Path, str]]:
    """Every path looser than it should be: the data directory walked breadth first (at
    most `limit` entries; a data directory with more images than that is checked in part,
    and the log says so), plus the database, log and image directory wherever they live.
    Symbolic links are not followed; paths owned by another user are only checked for
    others' bits (QEMU's user owns a running guest's disk under libvirt's DAC labelling)."""
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    queue = [p for p in _candidates(settings)]
    looked = 0
    while queue and looked < limit:
        path = queue.pop(0)
        try:
            path = path.resolve()
        except OSError:
            continue
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        looked += 1
        if stat.S_ISLNK(st.st_mode):
            continue
        why = looseness(path, st)
        if why:
            found.append((path, why))
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                for entry in entries:
                    queue.append(Path(entry.path))
                    if len(queue) + looked > limit:
                        break
    if queue:
        log.info("file permission check stopped after %d paths under %s", looked,
                 settings.data_dir)
    return found


def warn_loose(settings: Settings) -> list[tuple[Path, str]]:
    """Log a WARNING naming each path looser than Cirrus leaves it (first WARN_LIMIT)."""
    found = check_tree(settings)
    for path, why in found[:WARN_LIMIT]:
        log.warning("%s is not private (%s); chmod %s it (see docs/security.md, Files and "
                    "permissions)", path, why, "go-rwx" if not _group_gid else "o-rwx,g-w")
    if len(found) > WARN_LIMIT:
        log.warning("%d more paths under %s are not private", len(found) - WARN_LIMIT,
                    settings.data_dir)
    return found
