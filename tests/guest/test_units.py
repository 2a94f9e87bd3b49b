"""The systemd unit and the sysvinit script that run cirrus-guest-init in real images: both
start it once, after local filesystems and before any network manager."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import cirrus
from tests.services import missing

GUEST = Path(cirrus.__file__).parent / "guest"


def test_systemd_unit_runs_once_before_the_network_is_configured():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(GUEST / "cirrus-guest-init.service")

    assert "network-pre.target" in unit["Unit"]["Before"].split()
    assert "network-pre.target" in unit["Unit"]["Wants"].split()
    assert "local-fs.target" in unit["Unit"]["After"].split()
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["ExecStart"] == "/usr/sbin/cirrus-guest-init"


def test_systemd_unit_passes_systemd_analyze(tmp_path: Path):
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze is not installed")
    text = (GUEST / "cirrus-guest-init.service").read_text()
    unit = tmp_path / "cirrus-guest-init.service"
    unit.write_text(text.replace("/usr/sbin/cirrus-guest-init", str(GUEST / "cirrus-guest-init")))

    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert "cirrus-guest-init.service" not in done.stderr, done.stderr


def test_sysv_script_starts_in_rcs_before_networking():
    text = (GUEST / "cirrus-guest-init.sysv").read_text()
    header = re.search(r"### BEGIN INIT INFO\n(.*?)### END INIT INFO", text, re.S)
    assert header, "no LSB header"
    fields = dict(re.findall(r"^# ([\w-]+):\s*(.*)$", header[1], re.M))

    assert fields["Provides"] == "cirrus-guest-init"
    assert fields["Required-Start"].split() == ["$local_fs"]
    assert "networking" in fields["X-Start-Before"].split()
    assert fields["Default-Start"] == "S"


@pytest.mark.parametrize("shell", [["busybox", "sh"], ["dash"], ["bash", "--posix"]])
def test_scripts_parse_under_every_shell(shell: list[str]):
    if shutil.which(shell[0]) is None:
        missing(f"{shell[0]} is not installed")
    for script in ("cirrus-guest-init", "cirrus-guest-init.sysv"):
        done = subprocess.run([*shell, "-n", str(GUEST / script)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, f"{script}: {done.stderr}"
