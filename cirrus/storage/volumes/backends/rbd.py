"""The `rbd` volume backend: Ceph RBD images through the `rados`/`rbd` Python bindings.

Spec: "rbd" or "rbd:KEY=VALUE,...", keys (defaults in brackets):
  pool             the pool volumes live in [volumes]
  conf             ceph.conf [/etc/ceph/ceph.conf]
  user             the cephx user, without "client." [cirrus]
  keyring          its keyring [what ceph.conf says: /etc/ceph/ceph.client.<user>.keyring]
  secret_uuid      the libvirt secret holding the user's key on the compute hosts [none]
  connect_timeout  seconds to reach the monitors before BackendUnavailable [10]
  op_timeout       seconds a monitor or OSD operation may take before BackendUnavailable [60]
e.g. "rbd:pool=volumes,conf=/etc/ceph/ceph.conf,user=cirrus,secret_uuid=4a5b...". Options may
also be separated by ";" (CIRRUS_VOLUME_BACKENDS separates backends with commas).

Layout of the pool:
  image-<image id>            an image's data, imported once per pool (raw, written by
                              `qemu-img convert -n ... rbd:...`, so any format Glance has and
                              no temporary file); its snapshot `base` is protected and is the
                              parent of every volume made from the image
  volume-<id>                 a volume: created empty, or a clone (copy-on-write, a few
                              milliseconds whatever the size) of image-<id>@base, of
                              volume-<src>@snapshot-<id> or of volume-<src>@clone-<id>
  volume-<id>@snapshot-<sid>  a Cinder snapshot; protected when the first volume is cloned
                              from it
  volume-<src>@clone-<id>     the snapshot a volume made from volume <src> is cloned from;
                              removed with that volume
revert_to_snapshot rolls volume-<id> back to its snapshot (`rbd snap rollback`: a copy of the
snapshot's objects over the image's, so it takes time in proportion to the data).
The image cache is pruned by `prune_image_cache(keep)` (the volume role calls it after each
volume delete): image-<id> goes when its id is not in `keep` (the images of the volumes the
database still has) and its `base` snapshot has no children in any pool (volumes, server
root disks, or clones in the trash); it is unprotected, removed, and the image removed.
A snapshot that must go while volumes are cloned from it (delete_snapshot, or delete of the
volume it belongs to) has those volumes flattened first (their own full copy: about 2.6 s
per GiB here), then is unprotected and removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cirrus.config import Settings
from cirrus.storage.volumes.backend import (
    BackendError,
    BackendUnavailable,
    Capacity,
    Connection,
    ImageSource,
)
from cirrus.storage.volumes.backends import qemu_img
from cirrus.storage.volumes.backends.file import SAFE_ID

GiB = 1024**3
BASE_SNAP = "base"
IMPORT_LOCK_SECONDS = 1800  # how long a crashed importer's lock on an image can hold others


def _bindings() -> tuple[Any, Any]:
    try:
        import rados
        import rbd
    except ImportError as exc:
        raise BackendUnavailable(
            f"the Ceph Python bindings are not importable ({exc}): install python3-rados and "
            "python3-rbd (scripts/ceph links them into the virtualenv)") from None
    return rados, rbd


def _check_id(what: str, value: str) -> str:
    if not SAFE_ID.match(value):
        raise BackendError(f"{what} {value!r} is not a valid id (letters, digits, - and _)")
    return value


def volume_name(volume_id: str) -> str:
    return f"volume-{_check_id('volume id', volume_id)}"


def image_name(image_id: str) -> str:
    return f"image-{_check_id('image id', image_id)}"


def snapshot_name(snapshot_id: str) -> str:
    return f"snapshot-{_check_id('snapshot id', snapshot_id)}"


OPTIONS = ("pool", "conf", "user", "keyring", "secret_uuid", "connect_timeout", "op_timeout")


def parse_options(name: str, options: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in options.replace(";", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in OPTIONS:
            raise BackendError(f"volume backend {name!r}: unknown rbd option {item.strip()!r} "
                               f"(known: {', '.join(OPTIONS)}, as KEY=VALUE)")
        parsed[key] = value.strip()
    for key in ("connect_timeout", "op_timeout"):
        if key in parsed:
            try:
                if float(parsed[key]) <= 0:
                    raise ValueError
            except ValueError:
                raise BackendError(f"volume backend {name!r}: {key} must be a number of "
                                   f"seconds above 0, not {parsed[key]!r}") from None
    return parsed


class RbdBackend:
    kind = "rbd"

    def __init__(self, name: str, pool: str = "volumes", conf: str = "/etc/ceph/ceph.conf",
                 user: str = "cirrus", keyring: str = "", secret_uuid: str = "",
                 connect_timeout: float = 10.0, op_timeout: float = 60.0) -> None:
        self.name = name
        self.pool = pool
        self.conf = conf
        self.user = user
        self.keyring = keyring
        self.secret_uuid = secret_uuid
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._monitors: tuple[list[str], list[str]] | None = None

    @classmethod
    def from_spec(cls, name: str, options: str, settings: Settings) -> RbdBackend:
        o = parse_options(name, options)
        return cls(name, pool=o.get("pool") or "volumes",
                   conf=o.get("conf") or "/etc/ceph/ceph.conf", user=o.get("user") or "cirrus",
                   keyring=o.get("keyring", ""), secret_uuid=o.get("secret_uuid", ""),
                   connect_timeout=float(o.get("connect_timeout") or 10),
                   op_timeout=float(o.get("op_timeout") or 60))

    # -- connection ------------------------------------------------------------------------

    def _where(self) -> str:
        return f"Ceph ({self.conf}, client.{self.user}, pool {self.pool})"

    def _connect(self) -> Any:
        rados, _ = _bindings()
        with self._lock:
            if self._cluster is not None:
                return self._cluster
            if not Path(self.conf).exists():
                raise BackendUnavailable(f"volume backend {self.name}: {self.conf} does not exist "
                                         "(the Ceph configuration; see docs/ceph.md)")
            options = {"rados_osd_op_timeout": str(int(self.op_timeout)),
                       "rados_mon_op_timeout": str(int(self.op_timeout)),
                       "client_mount_timeout": str(int(self.connect_timeout))}
            if self.keyring:
                options["keyring"] = self.keyring
            cluster = rados.Rados(conffile=self.conf, name=f"client.{self.user}", conf=options)
            try:
                cluster.connect(timeout=max(1, int(self.connect_timeout)))
            except rados.Error as exc:
                cluster.shutdown()
                if isinstance(exc, rados.PermissionError | rados.PermissionDeniedError):
                    raise BackendUnavailable(
                        f"volume backend {self.name}: {self._where()} refused the key: {exc}"
                    ) from None
                raise BackendUnavailable(
                    f"volume backend {self.name}: {self._where()} did not answer within "
                    f"{self.connect_timeout:g} s ({exc}); is the cluster up and mon host in "
                    f"{self.conf} right?") from None
            self._cluster = cluster
            return cluster

    def close(self) -> None:
        """Drop the cluster connection (optional: the next call connects again)."""
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
                self._cluster = None

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """rados/rbd errors as BackendError, timeouts and lost connections as
        BackendUnavailable, each saying what was being done."""
        rados, rbd = _bindings()
        try:
            yield
        except BackendError:
            raise
        except (rados.TimedOut, rbd.Timeout, rbd.ConnectionShutdown) as exc:
            raise BackendUnavailable(f"volume backend {self.name}: {what}: {self._where()} "
                                     f"timed out ({exc})") from None
        except rbd.ImageNotFound as exc:
            raise BackendError(f"volume backend {self.name}: {what}: not found ({exc})") from None
        except rbd.ImageBusy as exc:
            raise BackendError(f"volume backend {self.name}: {what}: the image is in use (a "
                               f"client such as a guest still has it open: {exc})") from None
        except (rados.Error, rbd.Error) as exc:
            if getattr(exc, "errno", None) == errno.ETIMEDOUT:
                raise BackendUnavailable(f"volume backend {self.name}: {what}: "
                                         f"{self._where()} timed out ({exc})") from None
            raise BackendError(f"volume backend {self.name}: {what}: {exc}") from None

    @contextlib.contextmanager
    def _ioctx(self, what: str, pool: str | None = None) -> Iterator[Any]:
        rados, _ = _bindings()
        cluster = self._connect()
        with self._errors(what):
            try:
                ioctx = cluster.open_ioctx(pool or self.pool)
            except rados.ObjectNotFound:
                raise BackendError(f"volume backend {self.name}: pool {pool or self.pool} does "
                                   f"not exist in {self.conf}'s cluster") from None
            try:
                yield ioctx
            finally:
                ioctx.close()

    @contextlib.contextmanager
    def _image(self, ioctx: Any, name: str, snapshot: str | None = None,
               read_only: bool = False) -> Iterator[Any]:
        _, rbd = _bindings()
        image = rbd.Image(ioctx, name, snapshot=snapshot, read_only=read_only)
        try:
            yield image
        finally:
            image.close()

    def _rbd_spec(self, name: str) -> str:
        """The image as qemu's rbd: filename (colons in values escaped)."""
        def esc(value: str) -> str:
            return value.replace("\\", "\\\\").replace(":", "\\:")
        spec = f"rbd:{esc(self.pool)}/{esc(name)}:id={esc(self.user)}:conf={esc(self.conf)}"
        if self.keyring:
            spec += f":keyring={esc(self.keyring)}"
        return spec

    # -- images ----------------------------------------------------------------------------

    def _has_base(self, ioctx: Any, name: str) -> bool:
        _, rbd = _bindings()
        try:
            with self._image(ioctx, name, read_only=True) as image:
                return any(s["name"] == BASE_SNAP for s in image.list_snaps()) \
                    and image.is_protected_snap(BASE_SNAP)
        except rbd.ImageNotFound:
            return False

    def ensure_image(self, ioctx: Any, image: ImageSource) -> str:
        """image-<id>@base in the pool, imported on first use under a rados lock (one
        importer across processes; a crashed one's lock expires); returns image-<id>."""
        rados, rbd = _bindings()
        name = image_name(image.image_id)
        if self._has_base(ioctx, name):
            return name
        lock_object, cookie = f"cirrus.lock.{name}", secrets.token_hex(8)
        deadline = time.monotonic() + IMPORT_LOCK_SECONDS
        while True:
            try:
                ioctx.lock_exclusive(lock_object, "import", cookie, "cirrus image import",
                                     duration=IMPORT_LOCK_SECONDS)
                break
            except (rados.ObjectBusy, rados.ObjectExists):
                if time.monotonic() > deadline:
                    raise BackendError(f"image {image.image_id}: another import into "
                                       f"{self.pool} holds its lock") from None
                time.sleep(0.2)
        try:
            if self._has_base(ioctx, name):
                return name
            with contextlib.suppress(rbd.ImageNotFound):  # a crashed import's leftover
                with self._image(ioctx, name) as leftover:
                    for snap in leftover.list_snaps():
                        if leftover.is_protected_snap(snap["name"]):
                            leftover.unprotect_snap(snap["name"])
                        leftover.remove_snap(snap["name"])
                rbd.RBD().remove(ioctx, name)
            self._import(ioctx, name, image)
            with self._image(ioctx, name) as made:
                made.create_snap(BASE_SNAP)
                made.protect_snap(BASE_SNAP)
            return name
        finally:
            with contextlib.suppress(rados.Error):
                ioctx.unlock(lock_object, "import", cookie)
            with contextlib.suppress(rados.Error):
                ioctx.remove_object(lock_object)

    def _import(self, ioctx: Any, name: str, image: ImageSource) -> None:
        _, rbd = _bindings()
        fmt = qemu_img.qemu_format(image.disk_format)
        if not image.path.exists():
            raise BackendError(f"image {image.image_id}: its data {image.path} is not on the "
                               "volume host (image_dir must be shared with it)")
        found = qemu_img.info(image.path, fmt)
        if fmt == "qcow2" and (found.get("backing-filename") or found.get(
                "format-specific", {}).get("data", {}).get("data-file")):
            raise BackendError(f"image {image.image_id}: a qcow2 image with a backing file or "
                               "an external data file is refused")
        size = int(found["virtual-size"])
        rbd.RBD().create(ioctx, name, size, old_format=False)
        try:
            qemu_img.run("convert", "-n", "-f", fmt, "-O", "raw", str(image.path),
                         self._rbd_spec(name))
        except BackendError as exc:
            with contextlib.suppress(rbd.Error):
                rbd.RBD().remove(ioctx, name)
            raise BackendError(f"image {image.image_id}: import into {self.pool} failed: "
                               f"{exc} (QEMU's rbd driver: Debian's qemu-block-extra)") from None

    # -- snapshots and clones --------------------------------------------------------------

    def _clone(self, ioctx: Any, parent: str, snap: str, child: str, size_gb: int) -> None:
        _, rbd = _bindings()
        with self._image(ioctx, parent) as image:
            image.set_snap(snap)
            have = image.size()
            if size_gb * GiB < have:
                raise BackendError(f"a volume of {size_gb} GiB cannot hold its source of {have} "
                                   f"bytes ({-(-have // GiB)} GiB or more needed)")
            image.set_snap(None)
            if not image.is_protected_snap(snap):
                with contextlib.suppress(rbd.InvalidArgument):  # protected by a racer
                    image.protect_snap(snap)
        rbd.RBD().clone(ioctx, parent, snap, ioctx, child)
        if size_gb * GiB > have:
            with self._image(ioctx, child) as made:
                made.resize(size_gb * GiB)

    def _remove_snap(self, ioctx: Any, image: Any, name: str, snap: str) -> None:
        """Flatten what is cloned from image@snap, then unprotect and remove it."""
        _, rbd = _bindings()
        if image.is_protected_snap(snap):
            with self._image(ioctx, name, snapshot=snap, read_only=True) as at:
                children = list(at.list_children2())
            for child in children:
                if child.get("trash"):
                    continue
                pool = child["pool"]
                cluster = self._connect()
                child_ioctx = cluster.open_ioctx(pool)
                try:
                    if child.get("pool_namespace"):
                        child_ioctx.set_namespace(child["pool_namespace"])
                    with self._image(child_ioctx, child["image"]) as c:
                        c.flatten()
                except rbd.ImageNotFound:
                    pass
                finally:
                    child_ioctx.close()
            image.unprotect_snap(snap)
        image.remove_snap(snap)

    def _clone_source_cleanup(self, ioctx: Any, parent: dict[str, str] | None) -> None:
        """After a volume made from a volume is removed: its clone-<id> snapshot goes too."""
        _, rbd = _bindings()
        if not parent or not parent.get("snap", "").startswith("clone-"):
            return
        with contextlib.suppress(rbd.ImageNotFound):
            with self._image(ioctx, parent["image"]) as source:
                snaps = [s["name"] for s in source.list_snaps()]
                if parent["snap"] in snaps:
                    self._remove_snap(ioctx, source, parent["image"], parent["snap"])

    # -- the interface ---------------------------------------------------------------------

    def _exists(self, ioctx: Any, name: str) -> bool:
        _, rbd = _bindings()
        try:
            with self._image(ioctx, name, read_only=True):
                return True
        except rbd.ImageNotFound:
            return False

    def create_empty(self, volume_id: str, size_gb: int) -> None:
        _, rbd = _bindings()
        name = volume_name(volume_id)
        with self._ioctx(f"create {name}") as ioctx:
            with contextlib.suppress(rbd.ImageExists):
                rbd.RBD().create(ioctx, name, size_gb * GiB, old_format=False)

    def create_from_image(self, volume_id: str, size_gb: int, image: ImageSource) -> None:
        name = volume_name(volume_id)
        with self._ioctx(f"create {name} from image {image.image_id}") as ioctx:
            if self._exists(ioctx, name):
                return
            parent = self.ensure_image(ioctx, image)
            self._clone(ioctx, parent, BASE_SNAP, name, size_gb)

    def create_from_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        _, rbd = _bindings()
        name, source = volume_name(volume_id), volume_name(source_volume_id)
        snap = f"clone-{volume_id}"
        with self._ioctx(f"create {name} from {source}") as ioctx:
            if self._exists(ioctx, name):
                return
            with self._image(ioctx, source) as image:
                with contextlib.suppress(rbd.ImageExists):
                    image.create_snap(snap)
            self._clone(ioctx, source, snap, name, size_gb)

    def create_from_snapshot(self, volume_id: str, size_gb: int, source_volume_id: str,
                             snapshot_id: str) -> None:
        name, source = volume_name(volume_id), volume_name(source_volume_id)
        snap = snapshot_name(snapshot_id)
        with self._ioctx(f"create {name} from {source}@{snap}") as ioctx:
            if self._exists(ioctx, name):
                return
            self._clone(ioctx, source, snap, name, size_gb)

    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        _, rbd = _bindings()
        name, snap = volume_name(volume_id), snapshot_name(snapshot_id)
        with self._ioctx(f"snapshot {name}@{snap}") as ioctx, self._image(ioctx, name) as image:
            with contextlib.suppress(rbd.ImageExists):
                image.create_snap(snap)

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        _, rbd = _bindings()
        name, snap = volume_name(volume_id), snapshot_name(snapshot_id)
        with self._ioctx(f"delete snapshot {name}@{snap}") as ioctx:
            try:
                with self._image(ioctx, name) as image:
                    if any(s["name"] == snap for s in image.list_snaps()):
                        self._remove_snap(ioctx, image, name, snap)
            except rbd.ImageNotFound:
                return

    def delete(self, volume_id: str) -> None:
        _, rbd = _bindings()
        name = volume_name(volume_id)
        with self._ioctx(f"delete {name}") as ioctx:
            parent: dict[str, str] | None = None
            try:
                with self._image(ioctx, name) as image:
                    with contextlib.suppress(rbd.ImageNotFound):
                        parent = dict(zip(("pool", "image", "snap"), image.parent_info(),
                                          strict=True))
                    for snap in list(image.list_snaps()):
                        self._remove_snap(ioctx, image, name, snap["name"])
            except rbd.ImageNotFound:
                return
            try:
                rbd.RBD().remove(ioctx, name)
            except rbd.ImageNotFound:
                return
            if parent and parent["pool"] == self.pool:
                self._clone_source_cleanup(ioctx, parent)

    def extend(self, volume_id: str, new_size_gb: int) -> None:
        name = volume_name(volume_id)
        with self._ioctx(f"extend {name}") as ioctx, self._image(ioctx, name) as image:
            have, wanted = image.size(), new_size_gb * GiB
            if wanted < have:
                raise BackendError(f"volume {volume_id} is {have} bytes: {new_size_gb} GiB "
                                   "would shrink it")
            if wanted > have:
                image.resize(wanted)

    def exists(self, volume_id: str) -> bool:
        name = volume_name(volume_id)
        with self._ioctx(f"look up {name}") as ioctx:
            return self._exists(ioctx, name)

    def monitors(self) -> tuple[list[str], list[str]]:
        """The monitors' addresses (v1, which every librbd speaks) and ports, from the
        cluster's monmap."""
        if self._monitors is None:
            cluster = self._connect()
            with self._errors("read the monitor map"):
                ret, out, err = cluster.mon_command(
                    json.dumps({"prefix": "mon dump", "format": "json"}), b"",
                    timeout=int(self.op_timeout))
            if ret != 0:
                raise BackendError(f"volume backend {self.name}: mon dump: {err}")
            hosts, ports = [], []
            for mon in json.loads(out)["mons"]:
                addrs = mon.get("public_addrs", {}).get("addrvec", [])
                addr = next((a["addr"] for a in addrs if a.get("type") == "v1"),
                            addrs[0]["addr"] if addrs else mon.get("addr", "").split("/")[0])
                host, _, port = addr.rpartition(":")
                hosts.append(host.strip("[]"))
                ports.append(port)
            self._monitors = (hosts, ports)
        return self._monitors

    def connection(self, volume_id: str) -> Connection:
        name = volume_name(volume_id)
        with self._ioctx(f"connect {name}") as ioctx:
            if not self._exists(ioctx, name):
                raise BackendError(f"volume backend {self.name}: no volume {name} in {self.pool}")
        hosts, ports = self.monitors()
        return Connection("rbd", {
            "name": f"{self.pool}/{name}", "hosts": hosts, "ports": ports,
            "auth_enabled": True, "auth_username": self.user, "secret_uuid": self.secret_uuid,
            "secret_type": "ceph", "conf": self.conf, "keyring": self.keyring})

    def copy_to_file(self, volume_id: str, dest: Path, disk_format: str) -> int:
        name = volume_name(volume_id)
        fmt = qemu_img.qemu_format(disk_format)
        if not self.exists(volume_id):
            raise BackendError(f"volume backend {self.name}: no volume {name} in {self.pool}")
        qemu_img.run("convert", "-f", "raw", "-O", fmt, self._rbd_spec(name), str(dest))
        return dest.stat().st_size

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        _, rbd = _bindings()
        name, snap = volume_name(volume_id), snapshot_name(snapshot_id)
        with self._ioctx(f"revert {name} to {snap}") as ioctx, \
                self._image(ioctx, name) as image:
            if not any(s["name"] == snap for s in image.list_snaps()):
                raise BackendError(f"volume backend {self.name}: no snapshot {name}@{snap} in "
                                   f"{self.pool}")
            with self._image(ioctx, name, snapshot=snap, read_only=True) as at:
                if at.size() != image.size():
                    raise BackendError(f"volume {volume_id} and snapshot {snapshot_id} differ "
                                       "in size: a revert needs them equal")
            image.rollback_to_snap(snap)

    def prune_image_cache(self, keep: set[str]) -> list[str]:
        _, rbd = _bindings()
        removed: list[str] = []
        with self._ioctx("prune the image cache") as ioctx:
            for name in rbd.RBD().list(ioctx):
                image_id = name[len("image-"):] if name.startswith("image-") else ""
                if not image_id or image_id in keep:
                    continue
                try:
                    with self._image(ioctx, name) as image:
                        snaps = [s["name"] for s in image.list_snaps()]
                        if any(s != BASE_SNAP for s in snaps):
                            continue  # not a cache this backend made
                        if snaps:
                            with self._image(ioctx, name, snapshot=BASE_SNAP,
                                             read_only=True) as at:
                                if list(at.list_children2()):
                                    continue
                            if image.is_protected_snap(BASE_SNAP):
                                image.unprotect_snap(BASE_SNAP)  # EBUSY if a clone came
                            image.remove_snap(BASE_SNAP)
                    rbd.RBD().remove(ioctx, name)
                except (rbd.ImageNotFound, rbd.ImageBusy, rbd.ImageHasSnapshots,
                        rbd.InvalidArgument):
                    continue
                removed.append(image_id)
        return removed

    def capacity(self) -> Capacity:
        cluster = self._connect()
        with self._errors("read the cluster's capacity"):
            stats = cluster.get_cluster_stats()
            total = stats["kb"] * 1024 / GiB
            free = stats["kb_avail"] * 1024 / GiB
            ret, out, _ = cluster.mon_command(json.dumps({"prefix": "df", "format": "json"}), b"",
                                              timeout=int(self.op_timeout))
        if ret == 0:
            for pool in json.loads(out).get("pools", []):
                if pool.get("name") == self.pool:
                    free = pool["stats"]["max_avail"] / GiB
        return Capacity(total_gb=total, free_gb=free)
