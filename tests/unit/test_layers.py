"""The layer rules of pyproject.toml's [tool.importlinter] hold (docs: the contracts' names)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cirrus

ROOT = Path(__file__).resolve().parents[2]
# The packages that may use the web framework: the API and what starts it.
WEB_MODULES = {"api", "cli", "serving", "runtime"}


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        pytest.fail(result.stdout + result.stderr, pytrace=False)


def test_every_package_below_the_api_is_kept_from_the_web_framework() -> None:
    # A forbidden contract refuses to name a module that does not exist, so a new package
    # is added to it by hand (the layers contract, exhaustive, names every package already).
    below = {f"cirrus.{m.name}" for m in pkgutil.iter_modules(cirrus.__path__)
             if m.name not in WEB_MODULES}
    named = set(_contracts()["web-framework"]["source_modules"])
    assert named == below, (f"pyproject.toml, contract web-framework, source_modules: add "
                            f"{sorted(below - named)}, remove {sorted(named - below)}")
