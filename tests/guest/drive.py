"""The config drive the guest tests hand to cirrus-guest-init: the contract's layout
(../notes/virt.md) made from NICs rendered by cirrus.network.render, as a directory tree, a
vfat image labelled config-2 (mkfs.vfat + mcopy) or an iso9660 one (pycdlib, Rock Ridge and
Joliet names as genisoimage writes Nova's).

`sample_nics()` is the server both test modules boot: eth0 dual-stack with a gateway, DNS and
host routes (MTU 1450), eth1 IPv4 only, no gateway (MTU 1500).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pycdlib

from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.network.render import render_all

HOSTNAME = "web-1"
PUBLIC_KEYS = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1 alice@example",
               "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQKey2 bob@example")

SUBNET_V4 = SubnetInfo(
    id="5a1c0c0e-0000-4000-8000-000000000001", cidr="10.180.80.0/23", ip_version=4,
    gateway_ip="10.180.80.1", dns_nameservers=("10.180.0.2", "10.180.0.3"),
    host_routes=(("10.180.8.0/22", "10.180.80.1"), ("169.254.169.254/32", "10.180.80.10")),
    enable_dhcp=False)
SUBNET_V6 = SubnetInfo(
    id="5a1c0c0e-0000-4000-8000-000000000002", cidr="2001:db8:0:1::/64", ip_version=6,
    gateway_ip="2001:db8:0:1::1", dns_nameservers=("2001:db8::53",),
    host_routes=(("2001:db8:ff::/48", "2001:db8:0:1::fe"),), enable_dhcp=False)
SUBNET_NO_GATEWAY = SubnetInfo(
    id="5a1c0c0e-0000-4000-8000-000000000003", cidr="192.168.7.0/26", ip_version=4,
    gateway_ip=None, enable_dhcp=False)


def sample_nics() -> list[Nic]:
    return [
        Nic(index=0, name="eth0", port_id="cd9f6d46-4a3a-43ab-a466-994af9db96fc",
            mac="fa:16:3e:9c:bf:3d", network_id="5f0c1c1e-8d8b-4f43-9a38-0a6f1c2d3e4f",
            mtu=1450, fixed_ips=(FixedIp("10.180.81.249", SUBNET_V4),
                                 FixedIp("2001:db8:0:1::5", SUBNET_V6))),
        Nic(index=1, name="eth1", port_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            mac="fa:16:3e:01:02:03", network_id="9b2e7d60-3c1a-4b5e-8f7d-1e2f3a4b5c6d",
            mtu=1500, fixed_ips=(FixedIp("192.168.7.20", SUBNET_NO_GATEWAY),)),
    ]


def hot_plugged_nic() -> Nic:
    """A third port, attached to a running server: eth2, with a host route, MTU 1400."""
    subnet = SubnetInfo(
        id="5a1c0c0e-0000-4000-8000-000000000004", cidr="10.9.0.0/24", ip_version=4,
        gateway_ip=None, dns_nameservers=("10.9.0.53",),
        host_routes=(("10.10.0.0/16", "10.9.0.1"),), enable_dhcp=False)
    return Nic(index=2, name="eth2", port_id="77e4c8a0-1b2c-4d3e-8f4a-5b6c7d8e9f00",
               mac="fa:16:3e:aa:bb:cc", network_id="3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
               mtu=1400, fixed_ips=(FixedIp("10.9.0.5", subnet),))


def drive_files(nics: list[Nic], *, inject_ip: bool = True, hostname: str = HOSTNAME,
                public_keys: tuple[str, ...] = PUBLIC_KEYS) -> dict[str, bytes]:
    """The drive's files by path: OpenStack's latest/ metadata and the cirrus/ extras."""
    rendered = render_all(nics, static=inject_ip)
    meta = {"uuid": "8a3d3e9e-1d6b-4bb7-9a55-3f6a1d1f2c10", "hostname": hostname,
            "name": hostname, "public_keys": {f"key{i}": k for i, k in enumerate(public_keys)}}
    files = {
        "openstack/latest/meta_data.json": json.dumps(meta).encode(),
        "openstack/latest/network_data.json": json.dumps(rendered["network_data"]).encode(),
        "cirrus/hostname": f"{hostname}\n".encode(),
        "cirrus/authorized_keys": "".join(f"{k}\n" for k in public_keys).encode(),
    }
    if inject_ip:
        files |= {
            "cirrus/inject-ip": b"",
            "cirrus/interfaces": rendered["interfaces"].encode(),
            "cirrus/70-persistent-net.rules": rendered["udev_rules"].encode(),
            "cirrus/netplan.yaml": rendered["netplan"].encode(),
        }
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def make_vfat_image(files: dict[str, bytes], image: Path, work: Path) -> Path:
    """A 4 MiB vfat image labelled config-2 holding `files`."""
    tree = write_tree(work, files)
    subprocess.run(["mkfs.vfat", "-C", "-n", "config-2", str(image), "4096"],
                   check=True, capture_output=True)
    tops = sorted({str(tree / name.split("/", 1)[0]) for name in files})
    subprocess.run(["mcopy", "-s", "-i", str(image), *tops, "::/"],
                   check=True, capture_output=True)
    return image


def make_iso_image(files: dict[str, bytes], image: Path) -> Path:
    """An iso9660 image labelled config-2 holding `files` (long names from Rock Ridge)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="config-2")
    directories: set[str] = set()
    for name, content in sorted(files.items()):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in directories:
                directories.add(directory)
                iso.add_directory(_iso_path(parts[:depth]), rr_name=parts[depth - 1],
                                  joliet_path=f"/{directory}")
        iso.add_fp(io.BytesIO(content), len(content), _iso_path(parts, file=True),
                   rr_name=parts[-1], joliet_path=f"/{name}")
    iso.write(str(image))
    iso.close()
    return image


def _iso_path(parts: list[str], *, file: bool = False) -> str:
    """The plain ISO 9660 name: upper-case d-characters, and for a file "STEM.EXT;1"."""
    names = [_iso_name(part) for part in parts]
    if file:
        stem, dot, extension = parts[-1].rpartition(".")
        names[-1] = f"{_iso_name(stem)}.{_iso_name(extension)};1" if dot else f"{names[-1]}.;1"
    return "/" + "/".join(names)


def _iso_name(part: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", part.upper())
