"""A wheel (non-editable) install carries the shipped suites and data: `hwbench list
suites` lists them and `hwbench run smoke` finds the shipped smoke suite."""

import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_a_wheel_install_lists_and_finds_the_shipped_suites(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (whl,) = wheels.glob("hwbench-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "hwbench/suites/smoke.toml" in names and "hwbench/data/peaks.csv" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(whl)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "cwd"  # not the checkout: nothing can come from the source tree
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}

    def hwbench(*args):
        return subprocess.run([sys.executable, "-m", "hwbench.cli", *args], capture_output=True, text=True,
                              cwd=elsewhere, env=env, timeout=300)

    r = hwbench("list", "suites")
    assert r.returncode == 0, r.stderr
    assert str(site) in r.stdout.replace("\n", "") or "site" in r.stdout
    for name in ("smoke", "cpu", "gpu", "precision"):
        assert name in r.stdout
    r = hwbench("run", "smoke", "--dry-run")
    assert r.returncode == 0 and "to run" in r.stdout, r.stderr
    r = hwbench("run", "suites/smoke.toml", "--dry-run")  # no such file here: a clear error naming the shipped ones
    assert r.returncode == 2 and "shipped suites: " in r.stderr and "smoke" in r.stderr
