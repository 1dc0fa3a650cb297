"""asv on this repository: ``asv run --quick`` on the current commit with the existing
environment (``--python=same``: no environment is built) succeeds, and what it recorded
is the same kind of figure as a direct hwbench run of the same cases: the same cases,
throughput in samples/s of the same order of magnitude (a factor of 10 either way, so a
busy or drifting machine cannot fail it), and latency exactly batch / throughput.
How close the two agree is a measurement, not a pass/fail bound: see
tests/perf/bench_timer_agreement.py."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # 15-35 s: one asv run and one direct run of 3 tiny cases

MACHINE = "hwbench-test"


def _asv(args, cwd, home):
    env = {**os.environ, "HOME": str(home)}  # asv keeps its machine file in ~/.asv-machine.json
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)


def _recorded(results_dir):
    """{(benchmark, case): value} from asv's results file for this machine and commit."""
    files = [p for p in (results_dir / MACHINE).glob("*.json") if p.name != "machine.json"]
    assert len(files) == 1, files
    doc = json.loads(files[0].read_text())
    cols = doc["result_columns"]
    out = {}
    for name, entry in doc["results"].items():
        got = dict(zip(cols, entry))
        for case, value in zip(got["params"][0], got["result"]):
            out[(name.rsplit(".", 1)[-1], case.strip("'\""))] = value
    return out


@pytest.mark.skipif(shutil.which("git") is None, reason="asv needs git")
def test_asv_run_quick_records_what_hwbench_measures(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.bench_cases import CASES, run_cases
    finally:
        sys.path.remove(str(ROOT))
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    assert conf["benchmark_dir"] == "benchmarks" and conf["repo"] == "."
    # the shipped configuration, with its output folders moved under tmp_path
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"), env_dir=str(tmp_path / "env"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    r = _asv(["machine", "--yes", "--machine", MACHINE, "--config", "asv.conf.json"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _asv(["run", "--config", "asv.conf.json", "--quick", "--python=same", "--set-commit-hash", commit,
              "--machine", MACHINE, "--show-stderr"], tmp_path, tmp_path)
    assert r.returncode == 0 and "failed" not in r.stdout.lower(), r.stdout + r.stderr
    recorded = _recorded(tmp_path / "results")
    assert {c for _, c in recorded} == set(CASES)
    assert all(v is not None and v > 0 for v in recorded.values()), recorded

    direct = run_cases(tmp_path)
    from hwbench.results import read_record

    rec = read_record(direct[CASES[0]]["path"])
    for c in rec.cases:
        # same unit and order of magnitude; no timing ratio is asserted (two processes
        # minutes apart on a shared machine can differ by tens of per cent)
        tput = float(np.median(c.case.batch_size / np.asarray(c.measurement.raw_times_s[0])))
        got = recorded[("track_throughput", c.case_id)]
        assert tput / 10 <= got <= tput * 10, (c.case_id, got, tput)
        assert recorded[("track_latency", c.case_id)] == pytest.approx(c.case.batch_size / got * 1e3, rel=1e-6)
