"""hwbench history: runs ordered by time, a trend per case, change points (PELT via
ruptures) naming the first run after each step and what changed in its environment."""

import json

import numpy as np
import pytest

from hwbench.analysis import history as hist
from hwbench.results import write_atomic
from test_compare import case, cli, record

STEP = "encoder:tiny/infer/bs1/seq32/fp32/eager/cpu"
FLAT = "mlp:tiny/infer/bs1/fp32/eager/cpu"


def runs(n=10, step_at=5, step=1.3, noise=0.02, seed=0):
    """``n`` runs a day apart; STEP gets ``step`` x slower from run ``step_at`` on, where
    torch changes; FLAT only has noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = step if i >= step_at else 1.0
        cases = [case(STEP, [list(2e-3 * level * rng.lognormal(rng.normal(0, noise), 0.03, 50))]),
                 case(FLAT, [list(1e-4 * rng.lognormal(rng.normal(0, noise), 0.03, 50))])]
        out.append((f"run{i}.json", record(cases, run_id=f"run{i}", created=f"2026-11-{10 + i:02d}T00:00:00+00:00",
                                           torch_version="2.13" if i >= step_at else "2.12",
                                           hwbench_git_commit=f"{i:x}" * 40)))
    return out


def test_a_step_is_found_at_the_first_run_after_it_with_its_cause():
    given = runs()
    h = hist.history(given[::-1])  # any order in, oldest first out
    assert list(h.runs["run_id"]) == [f"run{i}" for i in range(10)]
    cps = h.changes
    assert list(cps["case_id"]) == [STEP]
    cp = cps.iloc[0]
    assert cp["run_index"] == 5 and cp["run_id"] == "run5"
    assert cp["step"] == pytest.approx(0.3, abs=0.05)
    assert "torch_version 2.12 -> 2.13" in cp["env_changes"] and "hwbench_git_commit" in cp["env_changes"]
    t = h.trends.set_index("case_id")
    assert t.loc[STEP, "change"] == pytest.approx(0.3, abs=0.08) and len(t.loc[STEP, "spark"]) == 10
    assert t.loc[FLAT, "runs"] == 10
    assert h.series["change_point"].sum() == 1
    assert "PELT" in h.method and "ruptures" in h.method


def test_noise_alone_and_small_steps_give_no_change_point():
    rng = np.random.default_rng(3)
    # 30 runs at 3 % run-to-run noise: about 2.5 % of such series show a false step
    false = sum(bool(hist.change_points(np.exp(rng.normal(0, 0.03, 30)))) for _ in range(40))
    assert false <= 3, false
    assert hist.change_points([1.0] * 5 + [1.02] * 5) == []  # below the 5 % threshold
    assert hist.change_points([1.0, 1.5, 1.0]) == []  # too short to tell
    got = hist.change_points([1.0] * 6 + [0.8] * 6)
    assert [c["index"] for c in got] == [6] and got[0]["step"] == pytest.approx(-0.2)


def test_case_glob_and_other_metrics():
    h = hist.history(runs(), case_glob="mlp:*")
    assert set(h.trends["case_id"]) == {FLAT} and h.changes.empty


def test_cli_formats(tmp_path):
    for name, rec in runs():
        write_atomic(tmp_path / name, rec)
    code, out, err = cli("history", tmp_path)
    assert code == 0, err
    assert STEP in out and "step +" in out and "run5" in out and max(map(len, out.splitlines())) <= 80
    code, out, _ = cli("history", tmp_path, "--format", "markdown", "--case", "encoder:*")
    assert code == 0 and out.startswith("### hwbench history") and "torch_version" in out and FLAT not in out
    code, out, _ = cli("history", tmp_path, "--format", "csv")
    assert out.splitlines()[0].startswith("case_id,run_index") and len(out.splitlines()) == 21
    code, out, _ = cli("history", tmp_path, "--format", "json")
    doc = json.loads(out)
    assert doc["change_points"][0]["run_id"] == "run5" and len(doc["runs"]) == 10
    code, _, err = cli("history", tmp_path, "--case", "nothing*")
    assert code == 2 and "no ok cases" in err
