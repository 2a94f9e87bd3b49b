"""The volumes suite's second part: a volume hot-attached to a running guest, until the guest
sees it (issue 15, point 6).

One `cirrus all-in-one --virt-driver libvirt` (CIRRUS_VIRT_TYPE=qemu) with two volume
backends, `file` and (when scripts/ceph's cluster answers) `rbd` on the pool `volumes`, and
one volume type per backend (`volume_backend_name`). The test guest (scripts/build-test-guest,
as the boot suite) boots once; then, per backend, --volumes-repeat times:

  api    POST /compute/v2.1/servers/{id}/os-volume_attachments until its answer (Nova's
         attach is synchronous here: the volume is reserved, connected, and the disk is in
         the running domain and its definition when it answers);
  guest  the same POST until the guest's kernel lists a virtio disk whose serial is the
         volume id (/sys/block/vd*/serial, read through the QEMU guest agent every 50 ms:
         each read costs a guest-exec round trip, ~50-100 ms under TCG, so this figure is
         up to one poll late).

Each volume (1 GiB, empty, made before the clock starts) is detached (DELETE, until the
volume is `available` and the guest no longer lists it) and deleted before the next. Medians.
Needs what the boot suite needs (root, QEMU, libvirtd); the rbd rows need the cluster.
"""

from __future__ import annotations

import base64
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import api, boot, server
from bench.volumes import CEPH_CONF, rbd_backend
from tests.virt.domains import destroy_leftover_domains

POLL = 0.05  # seconds between two reads of the guest's disks
TIMEOUT = 120.0


def agent_sh(dom: Any, command: str, timeout: float = 30.0) -> str:
    """`sh -c command` in the guest through the QEMU guest agent; its stdout."""
    import libvirt_qemu

    request = {"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", command], "capture-output": True}}
    pid = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), 10, 0))[
        "return"]["pid"]
    status_request = json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(libvirt_qemu.qemuAgentCommand(dom, status_request, 10, 0))["return"]
        if status.get("exited"):
            return base64.b64decode(status.get("out-data") or "").decode(errors="replace")
        time.sleep(0.01)
    raise RuntimeError(f"`{command}` did not finish in the guest within {timeout:.0f} s")


def serials(dom: Any) -> set[str]:
    """The serials of the guest's virtio disks; empty while the agent does not answer."""
    import libvirt

    try:
        return set(agent_sh(dom, "cat /sys/block/vd*/serial 2>/dev/null; true").split())
    except libvirt.libvirtError:
        return set()


def wait(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Cloud:
    def __init__(self, s: api.Session) -> None:
        self.s = s
        self.volume = f"{s.url}/volume/v3/{s.project_id}"
        self.headers = {"X-Auth-Token": s.token, "OpenStack-API-Version": "volume 3.42"}

    def post(self, url: str, body: dict) -> dict:
        r = httpx.post(url, json=body, headers=self.headers, timeout=60)
        r.raise_for_status()
        return r.json() if r.content else {}

    def volume_status(self, volume_id: str) -> str:
        r = httpx.get(f"{self.volume}/volumes/{volume_id}", headers=self.headers, timeout=30)
        if r.status_code == 404:
            return "GONE"
        r.raise_for_status()
        return r.json()["volume"]["status"]

    def create_type(self, backend: str) -> str:
        return self.post(f"{self.volume}/types", {"volume_type": {
            "name": f"bench-{backend}-{uuid.uuid4().hex[:6]}",
            "extra_specs": {"volume_backend_name": backend}}})["volume_type"]["id"]

    def create_volume(self, volume_type: str) -> str:
        volume_id = self.post(f"{self.volume}/volumes", {"volume": {
            "size": 1, "volume_type": volume_type, "name": "bench-attach"}})["volume"]["id"]
        wait(lambda: self.volume_status(volume_id) == "available", f"volume {volume_id}")
        return volume_id


def attach_times(cloud: Cloud, dom: Any, server_id: str, volume_type: str, count: int,
                 say: Callable[[str], None], label: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"api_s": [], "guest_s": []}
    attachments = f"{cloud.s.compute}/servers/{server_id}/os-volume_attachments"
    for i in range(1, count + 1):
        volume_id = cloud.create_volume(volume_type)
        started = time.monotonic()
        r = httpx.post(attachments, json={"volumeAttachment": {"volumeId": volume_id}},
                       headers=cloud.s.headers, timeout=120)
        answered = time.monotonic()
        r.raise_for_status()
        wait(lambda vid=volume_id: vid[:20] in serials(dom), f"the guest to see {volume_id}")
        seen = time.monotonic()
        times["api_s"].append(answered - started)
        times["guest_s"].append(seen - started)
        say(f"volumes: attach {label} {i}/{count}: API {answered - started:.2f} s, guest "
            f"sees it {seen - started:.2f} s")
        httpx.delete(f"{attachments}/{volume_id}", headers=cloud.s.headers,
                     timeout=120).raise_for_status()
        wait(lambda vid=volume_id: cloud.volume_status(vid) == "available",
             f"volume {volume_id} detached")
        wait(lambda vid=volume_id: vid[:20] not in serials(dom), f"the guest to drop {volume_id}")
        httpx.delete(f"{cloud.volume}/volumes/{volume_id}", headers=cloud.headers,
                     timeout=60).raise_for_status()
        wait(lambda vid=volume_id: cloud.volume_status(vid) == "GONE", f"{volume_id} deleted")
    return times


def run(count: int, say: Callable[[str], None]) -> dict[str, Any]:
    try:
        boot.check_host()
    except boot.Unavailable as exc:
        say(f"volumes: attach NOT RUN: {exc}")
        return {"skipped": str(exc)}
    import libvirt

    from tests.guest.qemu import build_test_guest

    kernel, initrd = build_test_guest()
    secret = str(uuid.uuid4())
    backends = {"file": "file"}
    skipped: dict[str, str] = {}
    ceph, why = rbd_backend()
    if ceph is None:
        skipped["rbd"] = why or "no Ceph"
        say(f"volumes: attach rbd NOT RUN: {why}")
    else:
        ceph.close()
        keyring = CEPH_CONF.parent / "ceph.client.cirrus.keyring"
        backends["rbd"] = (f"rbd:pool=volumes;conf={CEPH_CONF};user=cirrus;keyring={keyring};"
                           f"secret_uuid={secret}")
    root = Path(tempfile.mkdtemp(prefix="cirrus-bench-attach-", dir="/var/tmp"))
    root.chmod(0o755)
    runs: dict[str, dict[str, list[float]]] = {}
    aio = server.start(root / "data", {
        "CIRRUS_VIRT_TYPE": "qemu", "CIRRUS_LIBVIRT_URI": boot.LIBVIRT_URI,
        "CIRRUS_VOLUME_BACKENDS": ",".join(f"{k}={v}" for k, v in backends.items())},
        args=["--virt-driver", "libvirt"])
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # not one line per agent poll
    conn = libvirt.open(boot.LIBVIRT_URI)
    try:
        s = api.login(aio.url, aio.cloud["auth"])
        cloud = Cloud(s)
        image = boot.guest_image(s, kernel, initrd, root)
        r = httpx.post(f"{s.compute}/flavors", headers=s.headers, timeout=30, json={
            "flavor": {"name": f"attach.{uuid.uuid4().hex[:6]}", "vcpus": 1, "ram": 256,
                       "disk": 1}})
        r.raise_for_status()
        network = api.create_network(s, f"attach-{uuid.uuid4().hex[:6]}",
                                     "10.78.0.0/24")["network_id"]
        say("volumes: attach: booting the test guest")
        server_id = boot.create_server(s, image, r.json()["flavor"]["id"], network)
        wait(lambda: boot.server_status(s, server_id) == "ACTIVE", "the server to be ACTIVE")
        dom = conn.lookupByName(f"cirrus-{server_id}")
        wait(lambda: _agent_up(dom), "the guest agent", timeout=180)
        for backend in backends:
            runs[backend] = attach_times(cloud, dom, server_id, cloud.create_type(backend),
                                         count, say, backend)
        boot.delete_server(s, server_id)
    finally:
        conn.close()
        code = aio.stop(timeout=60)
        destroy_leftover_domains(boot.LIBVIRT_URI, root)
        _undefine(secret)
        shutil.rmtree(root, ignore_errors=True)
        if code != 0:
            say(f"volumes: attach: the all-in-one exited with {code}")
    med = statistics.median
    results = {f"{b} {k}": med(v) for b, r in runs.items() for k, v in r.items()}
    return {"results": results, "runs": runs, "repeat": count, "skipped_backends": skipped}


def _agent_up(dom: Any) -> bool:
    import libvirt
    import libvirt_qemu

    try:
        libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', 5, 0)
        return True
    except libvirt.libvirtError:
        return False


def _undefine(secret: str) -> None:
    import libvirt

    conn = libvirt.open(boot.LIBVIRT_URI)
    try:
        conn.secretLookupByUUIDString(secret).undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def table(outcome: dict, markdown: bool) -> str:
    r, runs = outcome["results"], outcome["runs"]
    rows = []
    for backend, run in runs.items():
        rows.append((f"{backend}: attach, POST until its answer", f"{r[f'{backend} api_s']:.2f} s",
                     ", ".join(f"{v:.2f}" for v in run["api_s"])))
        rows.append((f"{backend}: attach, POST until the guest sees the disk",
                     f"{r[f'{backend} guest_s']:.2f} s",
                     ", ".join(f"{v:.2f}" for v in run["guest_s"])))
    for backend, why in outcome.get("skipped_backends", {}).items():
        rows.append((f"{backend}: NOT RUN", "", why))
    if markdown:
        lines = ["| | median | runs (s) |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>8}  {c}" for a, b, c in rows)
