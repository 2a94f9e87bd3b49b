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
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.conformance.tempest_conf import (
    Cloud,
    Credentials,
    discover,
    prepare,
    render_conf,
    write_conf,
)
from tests.conformance.tempest_results import (
    compare,
    failures_report,
    format_table,
    normalise_id,
    parse_subunit,
    read_list,
    tally,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXCLUDE_FILE = HERE / "exclude.txt"
KNOWN_FAILURES_FILE = HERE / "known-failures.txt"
DEFAULT_REGEX = r"^tempest\.api\.(identity|compute|image|network|volume)\."
START_TIMEOUT = 90.0


def tempest_bin() -> Path:
    return Path(sys.executable).parent / "tempest"


# ------------------------------------------------------------------------- the cloud


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


def run_tempest(workspace: Path, regex: str, concurrency: int, exclude: Path | None,
                timeout: float | None) -> int:
    """`tempest run` in its own process group (stopped whole on timeout or SIGTERM); its
    output goes to workspace/tempest-run.txt."""
    cmd = [str(tempest_bin()), "run", "--regex", regex, "--concurrency", str(concurrency),
           "--config-file", str(workspace / "etc" / "tempest.conf")]
    if exclude is not None:
        cmd += ["--exclude-list", str(exclude)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with (workspace / "tempest-run.txt").open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"tempest: tempest run did not finish in {(timeout or 0) / 60:.0f} min",
                  file=sys.stderr)
            return 1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the finally clauses stop what was started


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
                   help="tests to run (stestr regex; default: identity, compute, image, network "
                        "and volume API tests)")
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
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
        log = workspace / "logs" / "tempest.log"
        results = parse_subunit(last_subunit(workspace),
                                log.read_text(errors="replace") if log.exists() else "")
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
            print(f"\n{len(known_failing)} known failures (listed in {args.known_failures})")
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
        if code != 0 and not any(r.status == "fail" for r in results):
            print(f"tempest: tempest run exited {code} with no failed test; the end of its "
                  f"output:\n{(workspace / 'tempest-run.txt').read_text()[-3000:]}",
                  file=sys.stderr)
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
