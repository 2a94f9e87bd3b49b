"""The libvirt/QEMU virt driver (setting `virt_driver = "libvirt"`, docs/libvirt.md).

- driver.py: LibvirtDriver, the VirtDriver on one libvirt connection;
- domain.py: the domain XML, pure functions of plain data;
- images.py: the per-host image cache and qcow2 root-disk overlays;
- storage.py: named storage pools (directories) and which one a server asks for;
- probe.py: `virt_type = auto`, KVM if a KVM guest really runs, else QEMU's TCG.

Only driver.py imports the `libvirt` module, so the rest is usable (and tested) without it.
"""
