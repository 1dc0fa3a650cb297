"""Parallel scaling in the results frame and the reports: the group's tokens/s and
per-rank throughput, the scaling curves, the parameter server against allreduce side by
side (analysis, terminal, markdown, HTML), from synthetic results with known answers."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from hwbench.analysis import scaling as sc
from hwbench.analysis.derive import load_results, record_rows, seq_len_of, to_frame
from hwbench.records import CaseIdentity, CaseResult, Facts, Measurement
from hwbench.results import write_atomic
from conftest import hwbench
from test_dataframe import run_record

SEQ, BS = 32, 4
# (strategy, world size) -> (median step s, collective bytes per step, s in collectives per step)
STEPS = {
    ("ddp", 1): (0.100, 0.0, 0.0), ("ddp", 2): (0.125, 4e6, 0.020), ("ddp", 4): (0.160, 6e6, 0.040),
    ("ps", 1): (0.100, 0.0, 0.0), ("ps", 2): (0.200, 8e6, 0.080), ("ps", 4): (0.400, 24e6, 0.250),
}


def _ident(parallelism: str, n: int) -> CaseIdentity:
    return CaseIdentity(model="encoder:tiny", mode="train", batch_size=BS, precision="fp32", backend="eager",
                        device="cpu", seq_len=SEQ, parallelism=parallelism, world_size=n)


def group_case(parallelism: str, n: int, step_s: float, comm_bytes: float, comm_s: float) -> CaseResult:
    """An ok weak-scaling case: every rank feeds BS samples, the group BS x n."""
    i = _ident(parallelism, n)
    return CaseResult(
        case_id=f"encoder:tiny/train/bs{BS}/seq{SEQ}/fp32/eager/cpu/{parallelism}{n}", case=i, status="ok",
        device_name="Test CPU", device_resolved="cpu",
        measurement=Measurement(raw_times_s=[[step_s] * 5], first_iter_s=0.2, warmup_s=0.3, measured_s=5 * step_s),
        facts=Facts(params=1000, flops_per_sample=1e6, threads_used=1, global_batch_size=BS * n,
                    comm_s_per_step=comm_s, comm_bytes_per_step=comm_bytes, rank_host_rss_peak_bytes=[2**20] * n))


def parallel_record(steps=STEPS, **kw):
    rec = run_record([group_case(p, n, *v) for (p, n), v in steps.items()], **kw)
    settings = {**rec.suite.resolved["settings"], "scaling": "weak"}
    return rec.model_copy(update={"suite": rec.suite.model_copy(update={"resolved": {"settings": settings}})})


@pytest.fixture
def frame() -> pd.DataFrame:
    return to_frame(record_rows(parallel_record()))


# ------------------------------------------------------------------ the frame
def test_group_tokens_and_per_rank_throughput(frame):
    r = frame.set_index("case_id").loc[f"encoder:tiny/train/bs{BS}/seq{SEQ}/fp32/eager/cpu/ddp4"]
    assert r["global_batch_size"] == 16
    assert r["throughput_samples_per_s"] == pytest.approx(16 / 0.160)
    assert r["processed_tokens_per_s"] == pytest.approx(16 * SEQ / 0.160)  # the group's batch x seq_len
    assert r["throughput_samples_per_s_per_rank"] == pytest.approx(16 / 0.160 / 4)
    assert math.isnan(r["tokens_per_s"])  # generated tokens: generation only


def test_a_parallel_cases_energy_per_sample_counts_the_groups_samples():
    from hwbench.records import Energy

    c = group_case("ddp", 4, 0.1, 1e6, 0.01)
    c = c.model_copy(update={"energy": Energy(energy_j=80.0, energy_source="nvml_counter", energy_window_s=0.5)})
    (row,) = record_rows(run_record([c]))
    # the energy of all four GPUs over 5 steps of the group's 16 samples
    assert row["energy_per_sample_j"] == pytest.approx(80.0 / (5 * BS * 4))


def test_processed_tokens_only_for_sequence_models_and_not_for_generation():
    from test_dataframe import _ident as ident, ok_case

    rows = record_rows(run_record([
        ok_case(ident("encoder:tiny", "infer", 8, seq_len=16), 10.0),
        ok_case(ident("mlp:tiny", "infer", 8), 10.0),
        ok_case(ident("decoder:tiny", "generate", 2, seq_len=16, gen_tokens=4), 10.0),
    ]))
    enc, mlp, gen = rows
    assert enc["processed_tokens_per_s"] == pytest.approx(8 * 16 / 0.010)
    assert mlp["processed_tokens_per_s"] is None and "tokens_per_s" not in enc
    assert gen["tokens_per_s"] == pytest.approx(2 * 4 / 0.010) and "processed_tokens_per_s" not in gen
    # a file that did not record seq_len: the model's default sequence length
    assert seq_len_of("encoder:tiny", None) > 0 and seq_len_of("mlp:tiny", None) is None
    assert seq_len_of("nosuch:model", None) is None


# ------------------------------------------------------------------ the analysis
def test_scaling_curves_known_answers(frame):
    curves = sc.parallel_scaling(frame)
    assert len(curves) == 6 and set(curves["parallelism"]) == {"ddp", "ps"}
    ddp = curves[curves["parallelism"] == "ddp"].set_index("world_size")
    assert ddp.index.tolist() == [1, 2, 4] and (ddp["n_points"] == 3).all()
    thr1 = BS / 0.100
    assert ddp.loc[4, "throughput_samples_per_s"] == pytest.approx(16 / 0.160)
    assert ddp.loc[4, "ideal_throughput_samples_per_s"] == pytest.approx(4 * thr1)
    assert ddp.loc[2, "scaling_efficiency"] == pytest.approx(0.100 / 0.125)  # weak: T(1) / T(N)
    assert ddp.loc[4, "speedup"] == pytest.approx(4 * 0.100 / 0.160)
    assert ddp.loc[4, "comm_fraction"] == pytest.approx(0.040 / 0.160)
    assert ddp.loc[4, "comm_bytes_per_step"] == 6e6
    assert ddp.loc[1, "scaling_efficiency"] == pytest.approx(1.0)


def test_ps_vs_allreduce_side_by_side(frame):
    cmp = sc.ps_vs_allreduce(sc.parallel_scaling(frame)).set_index("world_size")
    assert cmp.index.tolist() == [1, 2, 4]
    assert cmp.loc[4, "throughput_samples_per_s_ddp"] == pytest.approx(16 / 0.160)
    assert cmp.loc[4, "throughput_samples_per_s_ps"] == pytest.approx(16 / 0.400)
    assert cmp.loc[4, "throughput_ratio_ps_over_ddp"] == pytest.approx(0.160 / 0.400)
    assert cmp.loc[2, "comm_bytes_ratio_ps_over_ddp"] == pytest.approx(2.0)
    assert cmp.loc[4, "scaling_efficiency_ps"] == pytest.approx(0.100 / 0.400)
    assert cmp.loc[4, "case_id_ps"].endswith("/ps4")
    assert cmp["throughput_samples_per_s_fsdp"].isna().all()  # no fsdp case: an empty column


def test_no_comparison_without_both_strategies_and_each_run_has_its_own_curve(tmp_path):
    only_ddp = {k: v for k, v in STEPS.items() if k[0] == "ddp"}
    old = parallel_record(only_ddp, run_id="run-old", created="2026-01-01T00:00:00+00:00")
    slower = {k: (v[0] * 2, *v[1:]) for k, v in only_ddp.items()}
    new = parallel_record(slower, run_id="run-new", created="2026-02-01T00:00:00+00:00")
    write_atomic(tmp_path / "new.json", new)
    write_atomic(tmp_path / "old.json", old)
    curves = sc.parallel_scaling(load_results(tmp_path))
    assert len(curves) == 6 and (curves.groupby("run_id")["n_points"].max() == 3).all()
    by = curves.set_index(["run_id", "world_size"])
    # each run against its own world size 1: the same efficiency, twice the time in the new one
    for run in ("run-old", "run-new"):
        assert by.loc[(run, 2), "scaling_efficiency"] == pytest.approx(0.100 / 0.125)
        assert by.loc[(run, 2), "scaling_baseline_run_id"] == run
    assert by.loc[("run-new", 2), "throughput_samples_per_s"] == pytest.approx(2 * BS / 0.250)
    assert sc.ps_vs_allreduce(curves).empty
    assert sc.parallel_scaling(curves.iloc[0:0]).empty  # no parallel rows: an empty frame with the columns
    assert list(sc.ps_vs_allreduce(sc.parallel_scaling(curves.iloc[0:0])).columns)[-1] == "comm_bytes_ratio_ps_over_ddp"


def test_a_cross_run_efficiency_takes_the_newest_world_size_1_and_names_its_run(tmp_path):
    """A run with no world-size-1 case takes it from the newest run that has one (not
    the first file read); the table and the plot's ideal line use that one number."""
    ws1 = {("ddp", 1): STEPS[("ddp", 1)]}
    oldest = parallel_record(ws1, run_id="run-a", created="2026-01-01T00:00:00+00:00")
    newest = parallel_record({("ddp", 1): (0.080, 0.0, 0.0)}, run_id="run-b", created="2026-03-01T00:00:00+00:00")
    only2 = parallel_record({("ddp", 2): STEPS[("ddp", 2)]}, run_id="run-c", created="2026-02-01T00:00:00+00:00")
    for name, rec in (("a.json", oldest), ("b.json", newest), ("c.json", only2)):  # "a" is read first
        write_atomic(tmp_path / name, rec)
    df = load_results(tmp_path)
    r = df[df["run_id"] == "run-c"].iloc[0]
    assert r["scaling_baseline_run_id"] == "run-b"
    assert r["scaling_efficiency"] == pytest.approx((2 * BS / 0.125) / (2 * BS / 0.080))
    curves = sc.parallel_scaling(df)
    c = curves[curves["run_id"] == "run-c"].iloc[0]
    assert c["ideal_throughput_samples_per_s"] == pytest.approx(2 * BS / 0.080)  # the plot's dotted line
    assert c["scaling_baseline_run_id"] == "run-b"
    from hwbench.report import views
    from hwbench.report.sections.parallel import parallel_sections

    text = "\n".join(views.render_terminal(parallel_sections(df), 80))
    assert "baseline run" in text and "run-b" in text


def test_batch_and_precision_analyses_keep_parallel_cases_apart(frame):
    from hwbench.analysis import tradeoffs as tr

    # every (strategy, world size) is its own batch-scaling curve, never one curve of 6 points at bs4
    assert (tr.batch_scaling(frame)["n_points"] == 1).all()


# ------------------------------------------------------------------ the reports
@pytest.fixture
def results(tmp_path):
    p = tmp_path / "par.json"
    write_atomic(p, parallel_record())
    return p


def test_scaling_view_and_default_report_fit_80_columns(results):
    for args in (("--view", "scaling"), ()):
        r = hwbench("report", results, *args, env={"COLUMNS": "80"})
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert max(map(len, lines)) <= 80, "\n".join(line for line in lines if len(line) > 80)
        out = r.stdout
        assert "parallel scaling" in out and "parameter server" in out
        # ddp4 on its curve: samples/s, tokens/s, efficiency, comm share and bytes, with units
        row = next(line for line in lines if re.match(r"ddp\s+4\s", line))
        assert row.split()[2:] == ["100", "3.20k", "62.5%", "25.0%", "5.72", "MiB"]
        # world size 4 side by side: ddp, ps samples/s, their ratio, the bytes of each
        both = next(line for line in lines if re.match(r"\s+4\s.*×", line))
        assert both.split() == ["4", "100", "40.0", "0.400×", "62.5%", "25.0%", "5.72", "MiB", "22.9", "MiB"]


def test_scaling_markdown_has_every_column(results):
    r = hwbench("report", results, "--view", "scaling", "--format", "markdown")
    assert r.returncode == 0, r.stderr
    md = r.stdout
    assert "### parallel scaling" in md and "### parameter server (ps) vs allreduce (ddp)" in md
    assert "ps/ddp" in md and "22.9 MiB" in md  # ps4: 24e6 bytes per step


def test_report_without_parallel_cases_has_no_parallel_section(tmp_path):
    from test_dataframe import _ident as ident, ok_case

    p = tmp_path / "single.json"
    write_atomic(p, run_record([ok_case(ident(bs=b), 1.0 + b) for b in (1, 2)]))
    r = hwbench("report", p, env={"COLUMNS": "80"})
    assert r.returncode == 0 and "parallel" not in r.stdout


def test_html_parallel_scaling_section(results, tmp_path):
    from test_html_report import external_refs, parse

    out = tmp_path / "par.html"
    r = hwbench("report", results, "--html", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    doc = parse(text)
    assert external_refs(doc) == [] and not any(t == "script" for t, _ in doc.tags)
    ids = [a.get("id") for _, a in doc.tags if a.get("id")]
    assert "parallel-scaling" in ids
    sec = text[text.index('id="parallel-scaling"'):]
    sec = sec[:sec.index("<h2", 10)]
    assert sec.count("<figure>") == 2 and 'aria-label="parallel scaling' in sec
    assert "parallel-scaling.csv" in sec and "ps-vs-allreduce.csv" in sec
    assert "ideal" in sec and "ps / ddp" in sec
    body = "".join(parse(sec).text)
    assert "0.4×" in body or "0.400×" in body  # ps4 / ddp4 throughput


def test_a_parallel_cases_mfu_is_against_the_peak_of_every_device_of_the_group():
    from hwbench import peaks
    from hwbench.records import Environment, Segment

    c = group_case("ddp", 4, 0.1, 1e6, 0.01)
    gpu = c.model_copy(update={"device_name": "NVIDIA H100 80GB HBM3", "device_resolved": "cuda:0",
                               "case": c.case.model_copy(update={"device": "cuda"})})
    (row,) = record_rows(run_record([gpu]))
    one = peaks.peak("cuda", "NVIDIA H100 80GB HBM3", "fp32").tflops
    assert row["peak_tflops"] == pytest.approx(4 * one) and "x 4 devices" in row["peak_source"]
    assert row["mfu"] == pytest.approx(row["achieved_tflops"] / (4 * one))
    assert row["roofline_reason"].startswith("a parallel group of 4 ranks")
    # CPU: the ranks share the host's cores (1 thread each here: 4 ranks -> 4 cores, capped at the physical 8)
    env = Environment(hostname="h", cpu_cores_physical=8, cpu_freq_max_mhz=3000.0,
                      cpu_freq_max_source="test", cpu_flags=["avx2", "fma"])
    rec = run_record([c])
    rec = rec.model_copy(update={"segments": [Segment(index=0, started=rec.created, environment=env)]})
    (row,) = record_rows(rec)
    expect = peaks.peak("cpu", "", "fp32", cores=4, env=env.model_dump()).tflops
    assert expect and row["peak_tflops"] == pytest.approx(expect)
