"""Run Tempest's API tests against Cirrus (or any OpenStack cloud): `scripts/tempest`.

1. Unless --url is given, start `cirrus all-in-one` (fake driver) on a free loopback port
   with a temporary data dir, from this checkout or from --checkout DIR (PYTHONPATH=DIR).
2. As admin, make what Tempest needs and a fresh cloud lacks (two flavors, one image), then
   write `tempest.conf` from what the cloud announces (discover(): the catalog of a token,
   the compute microversions, the network extensions, the image import methods, the
   hypervisors) and from FEATURES below (what Cirrus supports: on; the rest: off).
3. `tempest init` a workspace, `tempest run` the selection with the exclude file
   (tests/conformance/exclude.txt), concurrency 2.
4. Read the run's subunit stream (`stestr last --subunit`), print passed/failed/skipped per
   service and one line per failure (the last failed HTTP request, the exception), and
   compare with tests/conformance/known-failures.txt: exit 1 if a test failed that is not
   listed there; list (without failing) the listed tests that now pass.
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXCLUDE_FILE = HERE / "exclude.txt"
KNOWN_FAILURES_FILE = HERE / "known-failures.txt"
SERVICES = ("identity", "compute", "image", "network")
DEFAULT_REGEX = r"^tempest\.api\.(identity|compute|image|network)\."
START_TIMEOUT = 90.0
FLAVORS = (("tempest1", "tempest-1", 128, 1, 1), ("tempest2", "tempest-2", 256, 1, 2))
IMAGE_NAMES = ("tempest-image", "tempest-image-alt")


def tempest_bin() -> Path:
    return Path(sys.executable).parent / "tempest"


# ------------------------------------------------------------------------- the cloud


@dataclass
class Credentials:
    auth_url: str  # the identity endpoint, ending in /v3
    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region: str = "RegionOne"
    verify: bool | str = True


@dataclass
class Started:
    process: subprocess.Popen
    data_dir: Path
    credentials: Credentials
    output: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_all_in_one(data_dir: Path, checkout: Path) -> Started:
    """`cirrus all-in-one` with checkout's code (cwd and PYTHONPATH), fake driver."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-m", "cirrus.cli", "all-in-one", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), "--virt-driver", "fake"]
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    clouds = data_dir / "clouds.yaml"
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)
            raise SystemExit("cirrus all-in-one exited with "
                             f"{proc.returncode}:\n{''.join(output[-20:])}")
        if any(f"clouds.yaml: {clouds}" in line for line in list(output)):
            try:
                if httpx.get(f"{url}/identity/v3", timeout=2).status_code == 200:
                    auth = yaml.safe_load(clouds.read_text())["clouds"]["cirrus"]["auth"]
                    creds = Credentials(auth["auth_url"], auth["username"], auth["password"],
                                        auth["project_name"], auth["user_domain_name"],
                                        auth["project_domain_name"])
                    return Started(proc, data_dir, creds, output)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"cirrus all-in-one did not come up:\n{''.join(output[-20:])}")


class Cloud:
    """An admin session on a cloud: a project-scoped token and its catalog."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.http = httpx.Client(timeout=60, verify=creds.verify)
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": creds.username, "domain": {"name": creds.user_domain_name},
                "password": creds.password}}},
            "scope": {"project": {"name": creds.project_name,
                                  "domain": {"name": creds.project_domain_name}}}}}
        r = self.http.post(creds.auth_url.rstrip("/") + "/auth/tokens", json=body)
        r.raise_for_status()
        self.token = r.headers["X-Subject-Token"]
        self.token_body = r.json()["token"]
        self.http.headers["X-Auth-Token"] = self.token

    def endpoint(self, service_type: str) -> str | None:
        """The public endpoint of service_type in the token's catalog (this region)."""
        for service in self.token_body.get("catalog", []):
            if service["type"] != service_type:
                continue
            for ep in service["endpoints"]:
                if ep["interface"] == "public" and ep.get("region_id", ep.get("region")) in (
                        self.creds.region, None):
                    return ep["url"].rstrip("/")
        return None

    def get(self, url: str, **kw) -> httpx.Response:
        return self.http.get(url, **kw)


def version_root(endpoint: str) -> str:
    """The unversioned root of an endpoint (…/compute/v2.1 -> …/compute)."""
    return re.sub(r"/v\d+(\.\d+)?(/[0-9a-f]{32})?/?$", "", endpoint)


@dataclass
class Discovery:
    auth_url: str
    region: str
    services: dict[str, str]  # service type -> public endpoint
    compute_min: str | None = None
    compute_max: str | None = None
    network_extensions: list[str] = field(default_factory=list)
    image_import_methods: list[str] = field(default_factory=list)
    image_stores: list[str] = field(default_factory=list)
    hypervisors: int = 1
    identity_version: str | None = None


def discover(cloud: Cloud) -> Discovery:
    d = Discovery(cloud.creds.auth_url, cloud.creds.region, {})
    for service in cloud.token_body.get("catalog", []):
        ep = cloud.endpoint(service["type"])
        if ep:
            d.services[service["type"]] = ep
    d.identity_version = str(cloud.token_body.get("methods") and "v3")
    compute = d.services.get("compute")
    if compute:
        doc = cloud.get(compute + "/").json().get("version", {})
        if not doc:  # not a versioned endpoint: take the v2.1 entry of the version list
            versions = cloud.get(version_root(compute) + "/").json().get("versions", [])
            doc = next((v for v in versions if v.get("id") == "v2.1"), {})
        d.compute_min = doc.get("min_version") or None
        d.compute_max = doc.get("version") or None
        r = cloud.get(compute + "/os-hypervisors")
        if r.status_code == 200:
            d.hypervisors = max(1, len(r.json().get("hypervisors", [])))
    network = d.services.get("network")
    if network:
        base = network if network.endswith("/v2.0") else network + "/v2.0"
        r = cloud.get(base + "/extensions")
        if r.status_code == 200:
            d.network_extensions = sorted(e["alias"] for e in r.json()["extensions"])
    image = d.services.get("image")
    if image:
        base = image if re.search(r"/v2/?$", image) else image + "/v2"
        r = cloud.get(base + "/info/import")
        if r.status_code == 200:
            d.image_import_methods = list(r.json().get("import-methods", {}).get("value", []))
        r = cloud.get(base + "/info/stores")
        if r.status_code == 200:
            d.image_stores = [s["id"] for s in r.json().get("stores", [])]
    return d


def _find_or_create_flavor(cloud: Cloud, compute: str, flavor_id: str, name: str, ram: int,
                           vcpus: int, disk: int) -> str:
    r = cloud.get(f"{compute}/flavors/{flavor_id}")
    if r.status_code == 200:
        return flavor_id
    r = cloud.http.post(f"{compute}/flavors", json={"flavor": {
        "id": flavor_id, "name": name, "ram": ram, "vcpus": vcpus, "disk": disk}})
    r.raise_for_status()
    return r.json()["flavor"]["id"]


def _find_or_create_image(cloud: Cloud, image: str, name: str) -> str:
    base = image if re.search(r"/v2/?$", image) else image + "/v2"
    r = cloud.get(f"{base}/images", params={"name": name, "status": "active"})
    r.raise_for_status()
    if r.json()["images"]:
        return r.json()["images"][0]["id"]
    r = cloud.http.post(f"{base}/images", json={
        "name": name, "disk_format": "raw", "container_format": "bare",
        "visibility": "public"})
    r.raise_for_status()
    image_id = r.json()["id"]
    r = cloud.http.put(f"{base}/images/{image_id}/file", content=b"\0" * 1024 * 1024,
                       headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return image_id


@dataclass
class Fixtures:
    flavor_ref: str
    flavor_ref_alt: str
    image_ref: str
    image_ref_alt: str


def prepare(cloud: Cloud, d: Discovery) -> Fixtures:
    """Two flavors and two public images (found by name, else made), for compute's tests."""
    compute, image = d.services["compute"], d.services["image"]
    flavors = [_find_or_create_flavor(cloud, compute, *f) for f in FLAVORS]
    images = [_find_or_create_image(cloud, image, name) for name in IMAGE_NAMES]
    return Fixtures(flavors[0], flavors[1], images[0], images[1])


# ------------------------------------------------------------------- tempest.conf

# What Cirrus does (True) and does not do yet (False), for the options Tempest cannot
# discover. A feature issue 13 builds is on, so its tests run (and fail until it is built,
# which tests/conformance/known-failures.txt records).
COMPUTE_FEATURES = {
    "resize": True,               # issue 13 point 3
    "pause": True,                # issue 13 point 3
    "suspend": True,              # issue 13 point 3
    "shelve": True,               # issue 13 point 3
    "shelve_migrate": False,
    "cold_migration": True,       # issue 13 point 3
    "live_migration": False,
    "block_migration_for_live_migration": False,
    "snapshot": True,
    "config_drive": True,
    "interface_attach": True,
    "console_output": False,      # the fake driver has no console
    "rescue": False,
    "stable_rescue": False,
    "change_password": False,
    "metadata_service": False,
    "personality": False,
    "vnc_console": False,
    "spice_console": False,
    "serial_console": False,
    "rdp_console": False,
    "attach_encrypted_volume": False,
    "swap_volume": False,
    "volume_multiattach": False,
    "disk_config": False,
    "hostname_fqdn_sanitization": False,
    "unified_limits": False,
    "volume_backed_live_migration": False,
    "can_migrate_between_any_hosts": True,
}
IDENTITY_FEATURES = {
    "api_v2": False,
    "api_v2_admin": False,
    "api_v3": True,
    "trust": False,
    "application_credentials": True,   # issue 13 point 2
    "access_rules": False,
    "project_tags": True,              # issue 13 point 2
    "domain_specific_drivers": False,
    "security_compliance": False,
    "external_idp": False,
    "immutable_user_source": False,
}
NETWORK_FEATURES = {
    "ipv6": True,
    "ipv6_subnet_attributes": True,
    "port_admin_state_change": True,
    "port_security": True,
    "floating_ips": False,             # issue 14 (network dataplane)
}


def _b(value: bool) -> str:
    return "true" if value else "false"


def render_conf(d: Discovery, creds: Credentials, fx: Fixtures, log_dir: Path | None = None
                ) -> configparser.ConfigParser:
    c = configparser.ConfigParser(interpolation=None)
    c["DEFAULT"] = {"debug": "true", "use_stderr": "false"}
    if log_dir is not None:
        c["DEFAULT"]["log_dir"] = str(log_dir)
        c["DEFAULT"]["log_file"] = "tempest.log"
    c["auth"] = {
        "use_dynamic_credentials": "true",
        "create_isolated_networks": "false",   # isolated networks need routers (issue 14)
        "admin_username": creds.username,
        "admin_password": creds.password,
        "admin_project_name": creds.project_name,
        "admin_domain_name": creds.user_domain_name,
        "default_credentials_domain_name": creds.user_domain_name,
        "tempest_roles": "member",
    }
    c["identity"] = {
        "uri_v3": d.auth_url.rstrip("/"),
        "auth_version": "v3",
        "region": d.region,
        "v3_endpoint_type": "public",
        "default_domain_id": "default",
        "admin_role": "admin",
        "disable_ssl_certificate_validation": _b(creds.verify is False),
    }
    if isinstance(creds.verify, str):
        c["identity"]["ca_certificates_file"] = creds.verify
    c["identity-feature-enabled"] = {k: _b(v) for k, v in IDENTITY_FEATURES.items()}
    c["service_available"] = {
        "nova": _b("compute" in d.services),
        "glance": _b("image" in d.services),
        "neutron": _b("network" in d.services),
        "cinder": "false",      # issue 15
        "swift": "false",
        "heat": "false", "horizon": "false", "ironic": "false", "designate": "false",
    }
    c["compute"] = {
        "image_ref": fx.image_ref,
        "image_ref_alt": fx.image_ref_alt,
        "flavor_ref": fx.flavor_ref,
        "flavor_ref_alt": fx.flavor_ref_alt,
        "region": d.region,
        "endpoint_type": "publicURL",
        "build_timeout": "60",
        "build_interval": "1",
        "min_compute_nodes": str(d.hypervisors),
    }
    if d.compute_min:
        c["compute"]["min_microversion"] = d.compute_min
    if d.compute_max:
        c["compute"]["max_microversion"] = d.compute_max
    c["compute-feature-enabled"] = {k: _b(v) for k, v in COMPUTE_FEATURES.items()}
    c["image"] = {"region": d.region, "build_timeout": "60", "build_interval": "1"}
    c["image-feature-enabled"] = {
        "api_v2": "true",
        "api_v1": "false",
        "import_image": _b("glance-direct" in d.image_import_methods),
        "os_glance_reserved": "true",
        "manage_locations": "false",
        "image_conversion": "false",
    }
    if d.image_import_methods:
        c["image"]["image_import_methods"] = ",".join(d.image_import_methods)
    c["network"] = {
        "region": d.region,
        "project_networks_reachable": "false",
        "shared_physical_network": "false",
        "build_timeout": "60",
        "build_interval": "1",
    }
    c["network-feature-enabled"] = {k: _b(v) for k, v in NETWORK_FEATURES.items()}
    c["network-feature-enabled"]["api_extensions"] = ",".join(d.network_extensions) or "None"
    c["validation"] = {"run_validation": "false"}
    c["volume-feature-enabled"] = {"backup": "false"}
    c["object-storage-feature-enabled"] = {"discoverability": "false"}
    return c


def write_conf(conf: configparser.ConfigParser, path: Path) -> None:
    with path.open("w") as f:
        conf.write(f)


# ------------------------------------------------------------------ run and results


def read_list(path: Path) -> list[tuple[str, str]]:
    """Entries of an exclude or known-failures file: (entry, comment)."""
    out = []
    for line in path.read_text().splitlines():
        entry, _, comment = line.partition("#")
        if entry.strip():
            out.append((entry.strip(), comment.strip()))
    return out


def normalise_id(test_id: str) -> str:
    """`mod.Cls.test[id-…,smoke]` -> `mod.Cls.test`; `setUpClass (mod.Cls)` -> `mod.Cls`."""
    m = re.match(r"^(setUpClass|tearDownClass) \((.+)\)$", test_id)
    if m:
        return m.group(2)
    return re.sub(r"\[.*\]$", "", test_id)


def service_of(test_id: str) -> str:
    parts = normalise_id(test_id).split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["tempest", "api"] else "other"


@dataclass
class Result:
    test_id: str
    status: str  # success, fail, skip, xfail, uxsuccess
    summary: str = ""


_REQUEST = re.compile(r"Request \([^)]*\): (\d{3}) (\w+) (\S+)")


def summarise(details: dict[str, str]) -> str:
    """One line: the last failed HTTP request of the test and the exception's last line."""
    log = details.get("pythonlogging:''", "")
    failed = [m for m in _REQUEST.finditer(log) if int(m.group(1)) >= 400]
    request = ""
    if failed:
        status, method, url = failed[-1].groups()
        request = f"{method} {re.sub(r'^https?://[^/]+', '', url)} -> {status}"
    # The exception: the lines after the traceback's last (indented) frame line.
    tb = details.get("traceback", "").strip().splitlines()
    last_frame = max((i for i, line in enumerate(tb) if line[:1].isspace()), default=-1)
    exc = " ".join(line.strip() for line in tb[last_frame + 1:last_frame + 4])
    text = "; ".join(x for x in (request, exc) if x)
    return re.sub(r"\s+", " ", text)[:400]


def parse_subunit(stream: bytes) -> list[Result]:
    """The final status of every test in a subunit v2 stream, with a failure summary."""
    import subunit
    import testtools

    results: dict[str, Result] = {}

    def on_test(test: dict) -> None:
        status = test["status"]
        if status in (None, "exists", "inprogress"):
            return
        details = {}
        for name, content in test["details"].items():
            try:
                details[name] = content.as_text()
            except Exception:  # noqa: BLE001 - a binary attachment; not needed
                continue
        summary = summarise(details) if status == "fail" else ""
        if status == "skip":
            summary = details.get("reason", "")
        results[test["id"]] = Result(test["id"], status, summary)

    case = subunit.ByteStreamToStreamResult(io.BytesIO(stream), non_subunit_name="stdout")
    sink = testtools.StreamToDict(on_test)
    sink.startTestRun()
    case.run(sink)
    sink.stopTestRun()
    return list(results.values())


def tally(results: Iterable[Result]) -> dict[str, Counter]:
    per: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        kind = {"success": "passed", "fail": "failed", "skip": "skipped",
                "xfail": "passed", "uxsuccess": "failed"}.get(r.status, r.status)
        per[service_of(r.test_id)][kind] += 1
    return per


def format_table(per: dict[str, Counter]) -> str:
    lines = [f"{'service':<10} {'passed':>7} {'failed':>7} {'skipped':>8}"]
    total: Counter = Counter()
    for service in sorted(per, key=lambda s: (s not in SERVICES, SERVICES.index(s)
                                              if s in SERVICES else 0, s)):
        c = per[service]
        total.update(c)
        lines.append(f"{service:<10} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
    lines.append(f"{'total':<10} {total['passed']:>7} {total['failed']:>7} "
                 f"{total['skipped']:>8}")
    return "\n".join(lines)


def compare(results: Iterable[Result], known: Iterable[str]) -> tuple[list[Result], list[str]]:
    """(failures not in known, known entries whose tests all passed in this run)."""
    known = list(known)
    known_set = set(known)
    results = list(results)
    new = [r for r in results if r.status in ("fail", "uxsuccess")
           and normalise_id(r.test_id) not in known_set]
    ran = {normalise_id(r.test_id): r.status for r in results}
    fixed = [k for k in known if ran.get(k) in ("success", "xfail")]
    return new, fixed


def failures_report(results: Iterable[Result]) -> str:
    by: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.status in ("fail", "uxsuccess"):
            by[service_of(r.test_id)].append(r)
    out = []
    for service in sorted(by):
        out.append(f"## {service} ({len(by[service])} failing)")
        for r in sorted(by[service], key=lambda r: r.test_id):
            out.append(f"{normalise_id(r.test_id)}  # {r.summary}")
        out.append("")
    return "\n".join(out)


def run_tempest(workspace: Path, regex: str, concurrency: int, exclude: Path | None,
                timeout: float | None) -> int:
    cmd = [str(tempest_bin()), "run", "--regex", regex, "--concurrency", str(concurrency),
           "--config-file", str(workspace / "etc" / "tempest.conf")]
    if exclude is not None:
        cmd += ["--exclude-list", str(exclude)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, cwd=workspace, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (workspace / "tempest-run.txt").write_text(proc.stdout)
    return proc.returncode


def last_subunit(workspace: Path) -> bytes:
    stestr = Path(sys.executable).parent / "stestr"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(stestr), "last", "--subunit"], cwd=workspace, env=env,
                          stdout=subprocess.PIPE, check=False).stdout


# ------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/tempest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regex", default=DEFAULT_REGEX,
                   help="tests to run (stestr regex; default: identity, compute, image and "
                        "network API tests)")
    p.add_argument("--checkout", type=Path, default=ROOT,
                   help="run the all-in-one from this checkout's code (default: this one)")
    p.add_argument("--url", help="the identity v3 URL of an existing cloud (nothing is "
                                 "started); with --username/--password/--project")
    p.add_argument("--username", default=os.environ.get("OS_USERNAME", "admin"))
    p.add_argument("--password", default=os.environ.get("OS_PASSWORD"))
    p.add_argument("--project", default=os.environ.get("OS_PROJECT_NAME", "admin"))
    p.add_argument("--domain", default="Default", help="user and project domain name")
    p.add_argument("--region", default=os.environ.get("OS_REGION_NAME", "RegionOne"))
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--workspace", type=Path,
                   help="tempest workspace to use (kept); default: a temporary one")
    p.add_argument("--keep", action="store_true", help="keep the temporary workspace and "
                                                       "data dir")
    p.add_argument("--timeout", type=float, default=None, help="minutes for tempest run")
    p.add_argument("--no-exclude", action="store_true", help="run the excluded tests too")
    p.add_argument("--known-failures", type=Path, default=KNOWN_FAILURES_FILE)
    p.add_argument("--failures-out", type=Path,
                   help="write the failures (one line each, by service) to this file")
    p.add_argument("--conf-only", action="store_true",
                   help="write tempest.conf into the workspace and stop")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="cirrus-tempest-"))
    started: Started | None = None
    workspace = (args.workspace or tmp / "workspace").resolve()
    t0 = time.monotonic()
    try:
        if args.url:
            if not args.password:
                raise SystemExit("--url needs --password (or OS_PASSWORD)")
            creds = Credentials(args.url, args.username, args.password, args.project,
                                args.domain, args.domain, args.region,
                                verify=not args.insecure)
        else:
            checkout = args.checkout.resolve()
            if not (checkout / "cirrus" / "__init__.py").exists():
                raise SystemExit(f"{checkout} is not a Cirrus checkout")
            started = start_all_in_one(tmp / "data", checkout)
            creds = started.credentials
            print(f"tempest: cirrus all-in-one from {checkout} at {creds.auth_url}",
                  file=sys.stderr)
        cloud = Cloud(creds)
        d = discover(cloud)
        fx = prepare(cloud, d)
        if not (workspace / ".stestr.conf").exists():
            workspace.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(tempest_bin()), "init", "--workspace-path",
                            str(tmp / "workspace.yaml"), str(workspace)], check=True,
                           stdout=subprocess.DEVNULL)
        write_conf(render_conf(d, creds, fx, workspace / "logs"),
                   workspace / "etc" / "tempest.conf")
        print(f"tempest: workspace {workspace}; compute microversions "
              f"{d.compute_min}-{d.compute_max}; network extensions "
              f"{len(d.network_extensions)}", file=sys.stderr)
        if args.conf_only:
            print(workspace / "etc" / "tempest.conf")
            return 0
        exclude = None if args.no_exclude else EXCLUDE_FILE
        timeout = args.timeout * 60 if args.timeout else None
        code = run_tempest(workspace, args.regex, args.concurrency, exclude, timeout)
        results = parse_subunit(last_subunit(workspace))
        elapsed = time.monotonic() - t0
        if not results:
            print((workspace / "tempest-run.txt").read_text()[-3000:], file=sys.stderr)
            print(f"tempest: no test ran (tempest run exited {code})", file=sys.stderr)
            return 1
        print(format_table(tally(results)))
        print(f"tempest: {len(results)} tests in {elapsed / 60:.1f} min "
              f"(regex {args.regex!r}, concurrency {args.concurrency})")
        report = failures_report(results)
        if args.failures_out:
            args.failures_out.write_text(report)
        known = [e for e, _ in read_list(args.known_failures)] \
            if args.known_failures.exists() else []
        new, fixed = compare(results, known)
        known_failing = [r for r in results if r.status == "fail"
                         and normalise_id(r.test_id) in set(known)]
        if known_failing:
            print(f"\n{len(known_failing)} known failures (listed in "
                  f"{args.known_failures.relative_to(ROOT) if args.known_failures.is_relative_to(ROOT) else args.known_failures})")
        if fixed:
            print(f"\nThese {len(fixed)} tests listed as known failures now pass; remove "
                  f"them from {args.known_failures}:")
            for k in fixed:
                print(f"  {k}")
        if new:
            print(f"\nFAILED: {len(new)} tests failed that are not known failures:")
            for r in sorted(new, key=lambda r: r.test_id):
                print(f"  {normalise_id(r.test_id)}  # {r.summary}")
            return 1
        if code != 0 and not known_failing:
            print(f"tempest: tempest run exited {code}", file=sys.stderr)
            return 1
        return 0
    finally:
        if started is not None:
            started.stop()
        if args.keep or args.workspace:
            print(f"tempest: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
