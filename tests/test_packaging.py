"""What ``pip install flopaudit`` installs: the wheel holds every file of the package, and an
installed copy (not this checkout) writes its reports.

The wheel is built from this checkout without build isolation (the test environment has
setuptools; nothing is downloaded) and unpacked, which is what installing a pure-Python wheel
does; ``python -m flopaudit`` then runs from the unpacked copy, outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "flopaudit"
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".tox", "build", "*.egg-info",
                                                                "__pycache__", "tests", "benchmarks"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip().splitlines()[-1:]}")
    (found,) = out.glob("flopaudit-*.whl")
    return found


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    """The HTML reports' templates (``*.j2``) were once left out: an installed flopaudit counted,
    then failed writing ``report.html``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to list the package's files")
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "flopaudit"], capture_output=True, text=True,
                             check=True).stdout.split()
    names = set(zipfile.ZipFile(wheel).namelist())
    assert tracked and [f for f in tracked if f not in names] == []


def test_an_installed_copy_counts_and_writes_every_report(wheel: Path, tmp_path: Path) -> None:
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    results = tmp_path / "counted"
    proc = subprocess.run([sys.executable, "-m", "flopaudit", "run", "--models", "linear-3d", "--backends",
                           "reference", "thop", "--no-cache", "--no-progress", "--out", str(results)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {r["status"] for r in json.loads((results / "results.json").read_text())["results"]} == {"ok"}
    proc = subprocess.run([sys.executable, "-m", "flopaudit", "report", str(results / "results.json"),
                           "--out", str(tmp_path / "rendered")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run([sys.executable, "-c", "import flopaudit; print(flopaudit.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(installed))  # the installed copy ran, not this checkout
    html = (tmp_path / "rendered" / "report.html").read_text()
    assert "linear-3d" in html and "<table" in html
    assert json.loads((tmp_path / "rendered" / "report.json").read_text())
