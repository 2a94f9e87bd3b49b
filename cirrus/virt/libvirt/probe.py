"""Which libvirt domain type this host can run: `kvm` or `qemu` (TCG), for `virt_type = auto`.

`/dev/kvm` being there is not enough: under broken nested virtualisation, KVM creates VMs
and runs real-mode code, yet a guest hangs as soon as it enters long mode (seen on this
project's machines: SeaBIOS runs, a Linux kernel never prints). So the probe boots a
64 KiB firmware that switches to 64-bit long mode with paging and then writes to QEMU's
`isa-debug-exit` port, under `-accel kvm`, with a short timeout. QEMU exits with status
`(0x31 << 1) | 1 = 99` only if the guest got that far; anything else (a hang, an error) is
"no KVM". The answer is cached for the life of the process.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VIRT_TYPES = ("auto", "kvm", "qemu")
PROBE_TIMEOUT = 2.0  # seconds; the probe takes ~0.1 s where KVM works
EXIT_OK = 99  # (0x31 << 1) | 1, what isa-debug-exit makes of the byte the probe writes
ROM_SIZE = 0x10000
RESET_VECTOR = 0xFFF0

# The firmware's code at ROM offset 0 (linked at 0xF0000), assembled from PROBE_ASM with
# `as --64` and `ld -Ttext=0xF0000 --oformat binary`; tests/virt checks they agree.
PROBE_CODE = bytes.fromhex(
    "fa2e660f0116a8000f20c06683c8010f22c066ea1a000f00080066b810008ed88ec08ed0bf0010"
    "0000b9000c000031c0f3abc7050010000003200000c7050020000003300000c70500300000830000"
    "000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d00000080"
    "0f22c0ea81000f001800b031e6f4f466900000000000000000ffff0000009acf00ffff00000092cf"
    "00ffff0000009aaf001f0088000f00")
# At the reset vector: a real-mode far jump to the code above (ljmp $0xF000, $0).
PROBE_RESET = bytes.fromhex("ea000000f0")

PROBE_ASM = """\
        .set BASE, 0xF0000
        .text
        .code16
entry:                                  # real mode, from the reset vector
        cli
        lgdtl   %cs:(gdt_desc - BASE)
        movl    %cr0, %eax
        orl     $1, %eax                # protected mode
        movl    %eax, %cr0
        ljmpl   $0x08, $pm32
        .code32
pm32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $0x1000, %edi           # page tables at 0x1000-0x3fff: zero them
        movl    $3072, %ecx
        xorl    %eax, %eax
        rep stosl
        movl    $0x2003, 0x1000         # PML4[0] -> PDPT
        movl    $0x3003, 0x2000         # PDPT[0] -> PD
        movl    $0x83, 0x3000           # PD[0]: the first 2 MiB, identity-mapped
        movl    %cr4, %eax
        orl     $0x20, %eax             # PAE
        movl    %eax, %cr4
        movl    $0x1000, %eax
        movl    %eax, %cr3
        movl    $0xC0000080, %ecx       # EFER.LME
        rdmsr
        orl     $0x100, %eax
        wrmsr
        movl    %cr0, %eax
        orl     $0x80000000, %eax       # paging on: long mode
        movl    %eax, %cr0
        ljmpl   $0x18, $lm64
        .code64
lm64:
        movb    $0x31, %al              # QEMU exits with (0x31 << 1) | 1 = 99
        outb    %al, $0xf4
        hlt
        .balign 8
gdt:
        .quad   0
        .quad   0x00CF9A000000FFFF      # 0x08: 32-bit code
        .quad   0x00CF92000000FFFF      # 0x10: data
        .quad   0x00AF9A000000FFFF      # 0x18: 64-bit code
gdt_desc:
        .word   31
        .long   gdt
"""


def probe_rom() -> bytes:
    """The 64 KiB firmware image QEMU loads with `-bios`."""
    rom = bytearray(ROM_SIZE)
    rom[: len(PROBE_CODE)] = PROBE_CODE
    rom[RESET_VECTOR: RESET_VECTOR + len(PROBE_RESET)] = PROBE_RESET
    return bytes(rom)


def accelerator_works(accel: str, timeout: float = PROBE_TIMEOUT,
                      qemu: str = "qemu-system-x86_64") -> bool:
    """Whether a guest reaches 64-bit long mode under QEMU's `accel` ("kvm", "tcg") within
    `timeout` seconds."""
    binary = shutil.which(qemu)
    if binary is None:
        log.warning("virt_type probe: %s not found", qemu)
        return False
    with tempfile.TemporaryDirectory(prefix="cirrus-kvm-probe-") as tmp:
        rom = Path(tmp) / "probe.rom"
        rom.write_bytes(probe_rom())
        cmd = [binary, "-accel", accel, "-machine", "pc", "-nodefaults", "-nographic",
               "-display", "none", "-monitor", "none", "-serial", "none", "-m", "16",
               "-bios", str(rom), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            log.info("virt_type probe: a %s guest did not reach long mode in %.1f s", accel,
                     timeout)
            return False
    if done.returncode != EXIT_OK:
        log.info("virt_type probe: %s failed (exit %d): %s", accel, done.returncode,
                 done.stderr.decode(errors="replace").strip()[-300:])
    return done.returncode == EXIT_OK


@functools.cache
def detect_virt_type() -> str:
    """`kvm` if /dev/kvm is usable and a KVM guest really runs, else `qemu`. Cached."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log.info("virt_type auto: /dev/kvm is missing or not accessible: using qemu (TCG)")
        return "qemu"
    if accelerator_works("kvm"):
        log.info("virt_type auto: KVM works: using kvm")
        return "kvm"
    log.warning("virt_type auto: /dev/kvm exists but a KVM guest does not run (nested "
                "virtualisation?): using qemu (TCG, slow)")
    return "qemu"


def resolve_virt_type(setting: str) -> str:
    """The domain type for the `virt_type` setting: `kvm`, `qemu`, or `auto` probed."""
    if setting not in VIRT_TYPES:
        raise ValueError(f"virt_type must be one of {', '.join(VIRT_TYPES)}, not {setting!r}")
    return detect_virt_type() if setting == "auto" else setting
