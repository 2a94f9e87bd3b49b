"""Clean-up of libvirt domains that a test or benchmark cloud left behind."""

from __future__ import annotations

from pathlib import Path

from cirrus.virt.libvirt.domain import is_cirrus_domain


def destroy_leftover_domains(uri: str, root: Path) -> None:
    """Destroy and undefine the domains at `uri` of the cloud whose data lives under `root`
    (a test failed mid-way, a benchmark was interrupted): QEMU must not keep running on a
    shared machine. Other clouds' domains on the same libvirtd are left alone."""
    import libvirt

    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if is_cirrus_domain(dom.name()) and str(root) in dom.XMLDesc(0):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    finally:
        conn.close()
