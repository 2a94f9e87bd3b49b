"""The `boot` suite: a real guest's boot through Cirrus beside bare QEMU, and root-disk creation.

Three measurements in one run, on this machine (QEMU under TCG here: no KVM):

  bare     `qemu-system-x86_64 -accel tcg` with the test guest's kernel and initramfs
           (scripts/build-test-guest) and a vfat config-2 drive carrying one NIC's static
           network files (tests/guest/drive.py), from just before the process starts to the
           `cirrus-guest: network ready in N ms` line in the serial console file: the floor.
  cirrus   `cirrus all-in-one --virt-driver libvirt` (CIRRUS_VIRT_TYPE=qemu) with the same
           kernel and initramfs uploaded as an aki/ari pair and a blank qcow2 root image
           pointing at them, one NIC on a DHCP-off subnet, config drive on; from just before
           the POST /servers request to the same line in the instance's console.log (the
           file libvirt writes the serial port to, polled directly every 20 ms: the API's
           os-getConsoleOutput would add its own round trips). Servers are created one
           after another, each deleted (to 404) before the next.
  overlay  cirrus.virt.libvirt.images.create_overlay (the root disk: a qcow2 overlay on the
           cached base) on a 10 MiB and a 1 GiB raw base, both fully allocated with
           fallocate (not sparse), the overlay grown to 2 GiB like a flavor's root disk.

Each is the median of --boots runs; the guest's own `network ready in N ms` figure is
kept for both boots. Needs root, qemu-system-x86_64, qemu-img, mkfs.vfat/mcopy and a
libvirtd at CIRRUS_LIBVIRT_URI (default qemu:///system); the suite says why and is
skipped when one is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from bench import api, server
from tests.virt.domains import destroy_leftover_domains

READY = re.compile(rb"^cirrus-guest: network ready in (\d+) ms\r?$", re.M)
BOOT_TIMEOUT = 120.0  # seconds, under TCG on a busy shared machine
POLL = 0.02  # seconds between two reads of a console file
CMDLINE = "console=ttyS0 quiet panic=-1"
LIBVIRT_URI = os.environ.get("CIRRUS_LIBVIRT_URI", "qemu:///system")
GOAL = 1.5  # Cirrus may add at most 50% to the bare boot
OVERLAY_SIZE = 2 * 2**30  # what a 2 GB flavor's root disk asks for
BASES = {"10 MiB": 10 * 2**20, "1 GiB": 2**30}


class Unavailable(Exception):
    """Something this machine lacks for real guests; the suite is skipped, saying what."""


def check_host() -> None:
    """Root, the QEMU tools, mkfs.vfat/mcopy and a libvirtd that answers."""
    if os.geteuid() != 0:
        raise Unavailable("real guests need root (taps, bridges, the test guest build)")
    for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            raise Unavailable(f"`{tool}` is not installed (qemu-system-x86, qemu-utils, "
                              "dosfstools, mtools)")
    try:
        import libvirt
    except ImportError as exc:
        raise Unavailable("libvirt-python is not installed (pip install 'cirrus[libvirt]')") \
            from exc
    try:
        libvirt.open(LIBVIRT_URI).close()
    except libvirt.libvirtError as exc:
        raise Unavailable(f"libvirtd is not reachable at {LIBVIRT_URI}: "
                          f"{exc.get_error_message()} (start it: `libvirtd -d; virtlogd -d`)") \
            from exc


@dataclass
class Boot:
    """One boot: seconds from the start to the QEMU process's creation (what comes before
    is Cirrus's control plane and libvirt; about nothing for bare QEMU) and to the ready
    line; the guest's own `network ready in N ms`."""

    qemu_s: float
    ready_s: float
    guest_ms: int


def since_boot() -> float:
    """Now on the clock /proc/<pid>/stat's start times count on (seconds since boot):
    psutil's create_time goes through the wall clock and the boot time's whole second,
    and was off by most of a second here."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start(pid: int) -> float:
    """When `pid` started, on since_boot()'s clock, to the kernel's tick (10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def qemu_started(started: float, mark: str) -> float:
    """Seconds from `started` (since_boot()) to the start of the QEMU process whose command
    line holds `mark` (the server's id: its disks' paths); NaN if it is gone."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        if "qemu" in (proc.info["name"] or "") and mark in " ".join(proc.info["cmdline"] or []):
            try:
                return process_start(proc.pid) - started
            except OSError:
                break
    return float("nan")


def wait_ready(console: Path, started: float, alive: Callable[[], bool]) -> tuple[float, int]:
    """Seconds from `started` (time.monotonic()) to the ready line in `console`, and the
    guest's own ms figure. The file is re-read whole every POLL seconds: it is small, and
    libvirt creates it late."""
    deadline = started + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            found = READY.search(console.read_bytes())
        except FileNotFoundError:
            found = None
        if found:
            return time.monotonic() - started, int(found[1])
        if not alive():
            break
        time.sleep(POLL)
    tail = console.read_bytes()[-2000:].decode(errors="replace") if console.exists() else ""
    raise RuntimeError(f"no ready line in {console} within {BOOT_TIMEOUT:.0f} s:\n{tail}")


# ------------------------------------------------------------------ bare QEMU


def bare_boots(kernel: Path, initrd: Path, work: Path, count: int,
               say: Callable[[str], None]) -> list[Boot]:
    """`count` boots of the test guest on bare QEMU, one after another, each killed once
    ready; timed from just before the process starts."""
    from tests.guest.drive import drive_files, make_vfat_image, sample_nics
    from tests.guest.qemu import boot

    nic = sample_nics()[0]
    drive = make_vfat_image(drive_files([nic]), work / "config-2.img", work / "drive")
    results = []
    for i in range(1, count + 1):
        run = work / f"bare-{i}"
        run.mkdir()
        started, started_boot = time.monotonic(), since_boot()
        with boot(kernel, initrd, drive, run, [nic.mac]) as guest:
            ready = wait_ready(guest.console, started, lambda g=guest: g.process.poll() is None)
            done = Boot(process_start(guest.process.pid) - started_boot, *ready)
        results.append(done)
        say(f"boot: bare QEMU {i}/{count}: QEMU started after {done.qemu_s:.2f} s, "
            f"network ready after {done.ready_s:.2f} s (guest: {done.guest_ms} ms)")
    return results


# ------------------------------------------------------------------ through Cirrus


def upload(s: api.Session, path: Path, disk_format: str, **properties: str) -> str:
    """An image from a local file; `properties` become image properties."""
    headers = {"X-Auth-Token": s.token}
    container = disk_format if disk_format in ("aki", "ari") else "bare"
    r = httpx.post(f"{s.url}/image/v2/images", headers=headers, timeout=30, json={
        "name": f"boot-{disk_format}-{uuid.uuid4().hex[:6]}", "disk_format": disk_format,
        "container_format": container, **properties})
    r.raise_for_status()
    image_id = r.json()["id"]
    with open(path, "rb") as data:
        r = httpx.put(f"{s.url}/image/v2/images/{image_id}/file", content=data.read(),
                      headers={**headers, "Content-Type": "application/octet-stream"},
                      timeout=120)
    r.raise_for_status()
    return image_id


def guest_image(s: api.Session, kernel: Path, initrd: Path, work: Path) -> str:
    """The kernel/ramdisk pair and a blank qcow2 root image that boots them."""
    root = work / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root), "64M"], check=True)
    kernel_id = upload(s, kernel, "aki")
    ramdisk_id = upload(s, initrd, "ari")
    return upload(s, root, "qcow2", kernel_id=kernel_id, ramdisk_id=ramdisk_id,
                  os_command_line=CMDLINE)


def create_server(s: api.Session, image: str, flavor: str, network: str) -> str:
    r = httpx.post(f"{s.compute}/servers", headers=s.headers, timeout=60, json={"server": {
        "name": f"boot-{uuid.uuid4().hex[:6]}", "imageRef": image, "flavorRef": flavor,
        "networks": [{"uuid": network}], "config_drive": True}})
    r.raise_for_status()
    return r.json()["server"]["id"]


def server_status(s: api.Session, server_id: str) -> str:
    r = httpx.get(f"{s.compute}/servers/{server_id}", headers=s.headers, timeout=30)
    if r.status_code == 404:
        return "GONE"
    r.raise_for_status()
    return r.json()["server"]["status"]


def delete_server(s: api.Session, server_id: str, timeout: float = 120.0) -> None:
    """DELETE, then wait for 404: the next boot must not share the cores with a teardown."""
    httpx.delete(f"{s.compute}/servers/{server_id}", headers=s.headers, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_status(s, server_id) == "GONE":
            return
        time.sleep(0.2)
    raise RuntimeError(f"server {server_id} was not deleted within {timeout:.0f} s")


def cirrus_boots(kernel: Path, initrd: Path, root: Path, count: int,
                 say: Callable[[str], None]) -> list[Boot]:
    """`count` servers booted through a libvirt all-in-one, one after another."""
    aio = server.start(root / "data", {"CIRRUS_VIRT_TYPE": "qemu",
                                       "CIRRUS_LIBVIRT_URI": LIBVIRT_URI},
                       args=["--virt-driver", "libvirt"])
    results = []
    try:
        s = api.login(aio.url, aio.cloud["auth"])
        image = guest_image(s, kernel, initrd, root)
        r = httpx.post(f"{s.compute}/flavors", headers=s.headers, timeout=30, json={
            "flavor": {"name": f"boot.{uuid.uuid4().hex[:6]}", "vcpus": 1, "ram": 256,
                       "disk": 1}})
        r.raise_for_status()
        flavor = r.json()["flavor"]["id"]
        network = api.create_network(s, f"boot-{uuid.uuid4().hex[:6]}",
                                     "10.77.0.0/24")["network_id"]
        instances = root / "data" / "instances"
        for i in range(1, count + 1):
            started, started_boot = time.monotonic(), since_boot()
            server_id = create_server(s, image, flavor, network)
            try:
                ready = wait_ready(instances / server_id / "console.log", started,
                                   lambda sid=server_id: server_status(s, sid) != "ERROR")
                done = Boot(qemu_started(started_boot, server_id), *ready)
            finally:
                delete_server(s, server_id)
            results.append(done)
            say(f"boot: Cirrus {i}/{count}: QEMU started {done.qemu_s:.2f} s, network "
                f"ready {done.ready_s:.2f} s after POST /servers (guest: {done.guest_ms} ms)")
    finally:
        code = aio.stop(timeout=60)
        destroy_leftover_domains(LIBVIRT_URI, root)
        if code != 0:
            say(f"boot: the libvirt all-in-one exited with {code}; log: {aio.log}")
    return results


# ------------------------------------------------------------------ root disks


def overlay_times(work: Path, count: int) -> dict[str, list[float]]:
    """Seconds create_overlay takes on each base size, `count` times each."""
    from cirrus.virt.libvirt.images import CachedImage, create_overlay

    times: dict[str, list[float]] = {}
    for label, size in BASES.items():
        base = work / f"base-{size}.raw"
        subprocess.run(["fallocate", "-l", str(size), str(base)], check=True)
        image = CachedImage(base, "raw", size)
        for i in range(count):
            disk = work / f"overlay-{size}-{i}.qcow2"
            started = time.monotonic()
            create_overlay(image, disk, OVERLAY_SIZE)
            times.setdefault(label, []).append(time.monotonic() - started)
            disk.unlink()
        base.unlink()
    return times


# ------------------------------------------------------------------ the suite


def run(boots: int, say: Callable[[str], None]) -> dict:
    """The whole suite: {"skipped": why} when the machine cannot run real guests."""
    try:
        check_host()
    except Unavailable as exc:
        say(f"boot: NOT RUN: {exc}")
        return {"skipped": str(exc)}
    from tests.guest.qemu import build_test_guest

    kernel, initrd = build_test_guest()
    # QEMU runs as libvirt-qemu: its files must be under directories it can traverse.
    root = Path(tempfile.mkdtemp(prefix="cirrus-bench-boot-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        say(f"boot: {boots} bare QEMU boots of {kernel.name} + {initrd.name}")
        bare = bare_boots(kernel, initrd, root, boots, say)
        say(f"boot: {boots} servers through a libvirt all-in-one in {root}")
        cirrus = cirrus_boots(kernel, initrd, root, boots, say)
        say("boot: root-disk overlays on 10 MiB and 1 GiB bases")
        overlays = overlay_times(root, max(boots, 5))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return summarize(bare, cirrus, overlays)


def summarize(bare: list[Boot], cirrus: list[Boot], overlays: dict[str, list[float]]) -> dict:
    med = statistics.median
    results = {f"{kind}_{key}": med(getattr(b, key) for b in boots)
               for kind, boots in (("bare", bare), ("cirrus", cirrus))
               for key in ("qemu_s", "ready_s", "guest_ms")}
    results["ratio"] = results["cirrus_ready_s"] / results["bare_ready_s"]
    for label, times in overlays.items():
        results[f"overlay_{label}_ms"] = 1000 * med(times)
    results["overlay_ratio"] = results["overlay_1 GiB_ms"] / results["overlay_10 MiB_ms"]
    return {"results": results, "goal_ratio": GOAL, "meets_goal": results["ratio"] <= GOAL,
            "runs": {"bare": [asdict(b) for b in bare], "cirrus": [asdict(b) for b in cirrus],
                     "overlay": overlays}}


def table(outcome: dict, markdown: bool) -> str:
    """The suite's figures as rows: what, median, every run."""
    r, runs = outcome["results"], outcome["runs"]

    def each(kind: str, key: str) -> str:
        return ", ".join(f"{b[key]:.2f}" if key.endswith("_s") else str(b[key])
                         for b in runs[kind])

    rows = [
        ("bare QEMU: process start to `network ready`", f"{r['bare_ready_s']:.2f} s",
         each("bare", "ready_s")),
        ("Cirrus: POST /servers to `network ready`", f"{r['cirrus_ready_s']:.2f} s",
         each("cirrus", "ready_s")),
        (f"Cirrus / bare (goal <= {outcome['goal_ratio']})", f"{r['ratio']:.2f}",
         "meets the goal" if outcome["meets_goal"] else "MISSES the goal"),
        ("bare QEMU: Popen to the QEMU process", f"{r['bare_qemu_s']:.2f} s",
         each("bare", "qemu_s")),
        ("Cirrus: POST /servers to the QEMU process", f"{r['cirrus_qemu_s']:.2f} s",
         each("cirrus", "qemu_s")),
        ("guest's `network ready in N ms`, bare", f"{r['bare_guest_ms']:.0f} ms",
         each("bare", "guest_ms")),
        ("guest's `network ready in N ms`, Cirrus", f"{r['cirrus_guest_ms']:.0f} ms",
         each("cirrus", "guest_ms")),
        *((f"root disk (qcow2 overlay) on a {label} base", f"{r[f'overlay_{label}_ms']:.1f} ms",
           ", ".join(f"{1000 * t:.1f}" for t in runs["overlay"][label])) for label in BASES),
        ("root disk, 1 GiB / 10 MiB base", f"{r['overlay_ratio']:.2f}", ""),
    ]
    if markdown:
        lines = ["| | median | runs |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>10}  {c}" for a, b, c in rows)
