"""Data and checkpoint cases end to end (issue 24), full tier: the tiny io suite runs
ok with real workers and loader processes, train cases carry their input headroom,
and no scratch file is left behind -- after the run, and after a run stopped by
SIGTERM in the middle of a data or a checkpoint case."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import DATA, ROOT, write_suite


def test_tiny_io_suite_runs_ok_with_headroom_and_leaves_no_scratch(tmp_path):
    import hwbench
    from hwbench.analysis.derive import load_results

    out = hwbench.run_suite(DATA / "io_tiny.toml", out_dir=tmp_path / "out")
    assert out.exit_code == 0, [(c.case_id, c.reason) for c in out.record.cases]
    df = load_results(out.path).set_index("case_id")
    assert (df["status"] == "ok").all(), df["reason"].to_dict()
    train = df[df["mode"] == "train"]
    assert train["input_headroom"].notna().all() and train["input_bound"].notna().all()
    data = df[df["mode"] == "data"]
    assert (data["bytes_per_s"] > 0).all() and (data["loader_cpu_util_pct"] >= 0).all()
    ckpt = df[df["mode"] == "checkpoint"]
    assert set(ckpt["checkpointer"]) == {"torch_save", "dcp"}
    assert (ckpt["checkpoint_bytes"] > 0).all() and (ckpt["checkpoint_save_gbs"] > 0).all()
    assert ckpt["checkpoint_load_gbs"].notna().all() and ckpt["scratch_fs_type"].notna().all()
    env = out.record.segments[0].environment
    assert {s.role for s in env.storage} == {"results", "scratch"}
    # the default scratch folder is the results folder: only the results file (and its lock) remain
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [out.path.name]


def _scratch_files(folder):
    return [p for p in folder.rglob("*")]


@pytest.mark.parametrize("block", [
    'models = ["cnn:tiny"]\nmodes = ["data"]\nbatch_sizes = [4]\nnum_workers = [1]',
    'models = ["mlp:tiny"]\nmodes = ["checkpoint"]\ncheckpointers = ["dcp"]',
])
def test_sigterm_mid_case_leaves_no_scratch_file(tmp_path, block):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    suite = write_suite(tmp_path, f"[[matrix]]\n{block}\n",
                        settings=f'min_time_s = 60\nmin_iters = 100000\ncheckpoint_dir = "{scratch}"\n'
                                 "data_samples = 64\ncollectors = []")
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.cli", "run", str(suite), "--out", str(tmp_path / "out"),
                             "--grace-s", "0.5"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    # the case is under way once its scratch folder is there (a data case's: with its files)
    while time.time() < deadline and len(_scratch_files(scratch)) < 2:
        time.sleep(0.05)
    assert len(_scratch_files(scratch)) >= 2, proc.poll()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert _scratch_files(scratch) == [], err[-2000:]
