"""The test guest under bare qemu-system-x86_64 (TCG, no libvirt), for tests/guest/test_boot.py.

`boot()` starts QEMU with the kernel and initramfs of scripts/build-test-guest, a read-only
virtio config drive, user-mode virtio NICs (restrict=on: nothing leaves QEMU) with the given
MACs, the serial console in a file, a QMP socket (hot-plug, power button) and the guest
agent's virtio-serial port. `parse_report()` reads the "cirrus-report:" lines the guest's
/init prints.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-test-guest"
BOOT_TIMEOUT = 90.0


@dataclass
class QemuGuest:
    process: subprocess.Popen
    console: Path
    qmp_socket: Path
    qga_socket: Path
    started: float = field(default_factory=time.monotonic)

    def console_text(self) -> str:
        if not self.console.exists():
            return ""
        return self.console.read_bytes().decode(errors="replace").replace("\r", "")

    def wait_for(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> re.Match:
        """The first console line matching `pattern`, once it has been printed."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = regex.search(self.console_text())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(self.console_text().splitlines()[-30:])
        raise AssertionError(f"no console line matches {pattern!r} (QEMU exit status "
                             f"{self.process.poll()}); console tail:\n{tail}")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def qmp(self, command: str, **arguments: object) -> dict:
        with _connect(self.qmp_socket) as stream:
            stream.readline()  # greeting
            _send(stream, {"execute": "qmp_capabilities"})
            _reply(stream)
            _send(stream, {"execute": command, "arguments": arguments})
            return _reply(stream)

    def qga(self, command: str, **arguments: object) -> dict:
        """One guest agent command, after a guest-sync that drops any stale reply."""
        with _connect(self.qga_socket) as stream:
            token = uuid.uuid4().int & 0x7FFFFFFF
            stream.write(b"\xff")
            _send(stream, {"execute": "guest-sync-delimited", "arguments": {"id": token}})
            while _reply(stream).get("return") != token:
                pass
            _send(stream, {"execute": command, "arguments": arguments})
            return _reply(stream)

    def guest_exec(self, path: str, *args: str, stdin: str | None = None,
                   timeout: float = 60.0) -> tuple[int, str, str]:
        """Runs a command in the guest through the agent: exit status, stdout, stderr."""
        request: dict = {"path": path, "arg": list(args), "capture-output": True}
        if stdin is not None:
            request["input-data"] = base64.b64encode(stdin.encode()).decode()
        pid = self.qga("guest-exec", **request)["return"]["pid"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.qga("guest-exec-status", pid=pid)["return"]
            if status["exited"]:
                return (status["exitcode"], _decode(status.get("out-data")),
                        _decode(status.get("err-data")))
            time.sleep(0.1)
        raise AssertionError(f"{path} {args} did not finish in the guest within {timeout} s")


def _decode(data: str | None) -> str:
    return base64.b64decode(data).decode() if data else ""


@contextmanager
def _connect(path: Path) -> Iterator:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(str(path))
    try:
        with sock.makefile("rwb") as stream:
            yield stream
    finally:
        sock.close()


def _send(stream, message: dict) -> None:
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()


def _reply(stream) -> dict:
    """The next reply, skipping QMP events and the agent's 0xff delimiter."""
    while True:
        line = stream.readline().lstrip(b"\xff").strip()
        if not line:
            if stream.closed:
                raise AssertionError("QEMU closed the socket")
            continue
        message = json.loads(line)
        if "event" not in message:
            return message


def build_test_guest() -> tuple[Path, Path]:
    """The kernel and initramfs from scripts/build-test-guest (built once, then cached)."""
    kernel, initrd = _run_build_script()
    return kernel, initrd


def build_whole_disk_image() -> Path:
    """The same guest as a raw MBR disk with SYSLINUX (`scripts/build-test-guest --whole-disk`,
    built once, then cached)."""
    _kernel, _initrd, disk = _run_build_script("--whole-disk")
    return disk


def _run_build_script(*options: str) -> list[Path]:
    done = subprocess.run([str(BUILD_SCRIPT), *options], capture_output=True, text=True,
                          timeout=900, check=False)
    if done.returncode != 0:
        raise AssertionError(f"scripts/build-test-guest {' '.join(options)} failed:\n"
                             f"{done.stderr}")
    return [Path(line) for line in done.stdout.split()]


@contextmanager
def boot(kernel: Path, initrd: Path, drive: Path, work: Path, macs: list[str],
         cmdline: str = "") -> Iterator[QemuGuest]:
    """A running guest, killed on exit; NICs in PCI order, one per MAC."""
    console, qmp_socket, qga_socket = work / "console.log", work / "qmp.sock", work / "qga.sock"
    command = [
        "qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "256",
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", f"console=ttyS0 quiet panic=-1 {cmdline}".strip(),
        "-drive", f"file={drive},if=virtio,format=raw,readonly=on",
        "-serial", f"file:{console}",
        "-qmp", f"unix:{qmp_socket},server=on,wait=off",
        "-device", "virtio-serial",
        "-chardev", f"socket,path={qga_socket},server=on,wait=off,id=qga0",
        "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    ]
    for index, mac in enumerate(macs):
        command += ["-netdev", f"user,id=n{index},restrict=on,ipv6=off",
                    "-device", f"virtio-net-pci,netdev=n{index},mac={mac}"]
    with open(work / "qemu.log", "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        yield QemuGuest(process, console, qmp_socket, qga_socket)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@dataclass
class Report:
    """What the guest printed between "cirrus-report: begin" and "end"."""

    links: dict[str, dict] = field(default_factory=dict)  # name -> {"mac", "mtu"}
    addresses: dict[str, set[str]] = field(default_factory=dict)  # name -> {"a/prefix"}
    routes: set[tuple[str, str, str]] = field(default_factory=set)  # (dest, via, dev)
    routes6: set[tuple[str, str, str]] = field(default_factory=set)
    hostname: str = ""
    resolv: list[str] = field(default_factory=list)


LINK = re.compile(r"^\d+: ([^:@]+)(?:@\S+)?: <[^>]*> mtu (\d+) .*link/ether (\S+)")
ADDRESS = re.compile(r"^\d+: (\S+)\s+inet6? (\S+) .*scope global")
VIA = re.compile(r"^(\S+) via (\S+) dev (\S+)")


def parse_report(console: str) -> Report:
    body = console.split("cirrus-report: begin\n", 1)[1].split("cirrus-report: end", 1)[0]
    report = Report()
    for line in body.splitlines():
        if not line.startswith("cirrus-report: "):
            continue  # a kernel message between the report's lines
        kind, _, text = line.removeprefix("cirrus-report: ").partition(" ")
        if kind == "link" and (m := LINK.match(text)):
            report.links[m[1]] = {"mac": m[3], "mtu": int(m[2])}
            report.addresses.setdefault(m[1], set())
        elif kind == "addr" and (m := ADDRESS.match(text)):
            report.addresses.setdefault(m[1], set()).add(m[2])
        elif kind in ("route", "route6") and (m := VIA.match(text)):
            (report.routes if kind == "route" else report.routes6).add((m[1], m[2], m[3]))
        elif kind == "hostname":
            report.hostname = text.strip()
        elif kind == "resolv":
            report.resolv.append(text.strip())
    return report
