import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def write_suite(tmp_path: Path, body: str, name: str = "suite.toml", settings: str = "") -> Path:
    # idle_baseline_s = 0: tests do not wait for an idle baseline unless they test it
    defaults = {"warmup_iters": "1", "min_time_s": "0.03", "min_iters": "3", "timeout_s": "60", "idle_baseline_s": "0"}
    for line in settings.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            defaults[key.strip()] = value.strip()
    lines = "\n".join(f"{k} = {v}" for k, v in defaults.items())
    text = f"""
[suite]
name = "t"
[settings]
{lines}
{body}
"""
    p = tmp_path / name
    p.write_text(text)
    return p


def hwbench(*args, env=None, timeout=300, cwd=None):
    """Run the real CLI in a subprocess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hwbench.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd or ROOT,
    )


def run_suite(tmp_path: Path, body: str, settings: str = "", **kwargs):
    """Run a suite written from ``body`` through the library entry point with real
    workers; returns ({case_id: derived row}, RunOutcome)."""
    import hwbench
    from hwbench.analysis.derive import record_rows

    out = hwbench.run_suite(write_suite(tmp_path, body, settings=settings), out_dir=tmp_path / "out", **kwargs)
    rows = {r["case_id"]: r for r in record_rows(out.record)} if out.record is not None else {}
    return rows, out
