"""hwbench.load_results() as a data scientist meets it: a stable, typed schema whatever
the files hold (everything skipped, generation, auto batch), pivots and run-to-run
comparisons in a few lines, and one case's time series from load_samples()."""

import pandas as pd
import pytest

import hwbench
from hwbench.analysis.derive import COLUMNS, SCHEMA
from hwbench.errors import ResultsError
from hwbench.records import (BatchLimit, CaseIdentity, CaseResult, Energy, Environment, Facts, Flag, Measurement,
                             RunRecord, SamplerResult, Segment, SuiteRef)
from hwbench.results import write_atomic


def _ident(model="mlp:tiny", mode="infer", bs=1, precision="fp32", **kw):
    return CaseIdentity(model=model, mode=mode, batch_size=bs, precision=precision, backend="eager", device="cpu", **kw)


def _case_id(i: CaseIdentity) -> str:
    bs = "bsauto" if i.batch_size == 0 else f"bs{i.batch_size}"
    shape = f"/seq{i.seq_len}" if i.seq_len else ""
    gen = f"/gen{i.gen_tokens}" if i.gen_tokens else ""
    return f"{i.model}/{i.mode}/{bs}{shape}{gen}/{i.precision}/eager/cpu"


def ok_case(ident: CaseIdentity, ms: float, **kw) -> CaseResult:
    gen = ident.mode == "generate"
    m = Measurement(raw_times_s=[[ms / 1e3] * 6], first_iter_s=0.01, warmup_s=0.02, measured_s=6 * ms / 1e3,
                    ttft_s=[ms / 4e3] * 6 if gen else None, decode_s=[3 * ms / 4e3] * 6 if gen else None)
    return CaseResult(case_id=_case_id(ident), case=ident, status="ok", device_name="Test CPU", device_resolved="cpu",
                      measurement=m, facts=Facts(params=1000, flops_per_sample=1e6, threads_used=2), **kw)


def skipped_case(ident: CaseIdentity, reason="bf16 needs a GPU here") -> CaseResult:
    return CaseResult(case_id=_case_id(ident), case=ident, status="skipped", reason=reason)


def run_record(cases, hostname="host-a", run_id="run00000001", created="2026-11-25T10:00:00+00:00", **kw) -> RunRecord:
    env = Environment(hostname=hostname, torch_version="2.13.0", hwbench_version="0.1.0", cpu_cores_physical=2)
    return RunRecord(run_id=run_id, created=created, status=kw.pop("status", "complete"),
                     suite=SuiteRef(name="s", path="s.toml", hash="abc", resolved={"settings": {"noise_threshold": 0.1}}),
                     segments=[Segment(index=0, started=created, environment=env)], cases=cases, **kw)


@pytest.fixture
def files(tmp_path):
    """Results files of the kinds that used to give frames of other shapes."""
    skipped = run_record([skipped_case(_ident(precision=p, bs=b)) for p in ("fp32", "bf16") for b in (1, 8)])
    gen = run_record([ok_case(_ident("decoder:tiny", "generate", b, p, seq_len=32, gen_tokens=16), 10.0 * b)
                      for p in ("fp32", "bf16") for b in (1, 4)], run_id="run00000002")
    auto_ids = [_ident(bs=b) for b in (1, 2, 4)]
    auto = run_record(
        [CaseResult(case_id=_case_id(_ident(bs=0, precision="bf16")), case=_ident(bs=0, precision="bf16"),
                    status="failed", reason="batch search: the first step failed")]
        + [ok_case(i, 1.0 + i.batch_size, flags=[Flag(flag="energy_estimated", detail="not measured")],
                   energy=Energy(energy_j=0.5, energy_source="estimated", energy_window_s=0.1),
                   collectors={"host": SamplerResult(n_samples=3, summary={"cpu_util_pct_mean": 90.0},
                                                     samples={"t_s": [0.0, 0.05, 0.1], "cpu_util_pct": [80, 95, None]})})
           for i in auto_ids],
        run_id="run00000003", batch_limits={_case_id(_ident(bs=0)): BatchLimit(batch_limit=4, limited_by="max_batch_size")},
    )
    out = {}
    for name, rec in (("skipped", skipped), ("gen", gen), ("auto", auto)):
        out[name] = tmp_path / f"{name}.json"
        write_atomic(out[name], rec)
    return out


def test_every_frame_has_the_whole_schema_with_its_dtypes(files):
    frames = {name: hwbench.load_results(p) for name, p in files.items()}
    for name, df in frames.items():
        assert list(df.columns[:len(COLUMNS)]) == list(COLUMNS), name
        for col, dtype in SCHEMA:
            assert str(df[col].dtype).startswith(dtype.split("[")[0]), (name, col, df[col].dtype)
    sk = frames["skipped"]
    assert sk["latency_ms_p50"].isna().all() and (sk["status"] == "skipped").all()
    assert str(sk["batch_size"].dtype) == "Int64" and list(sk["batch_size"]) == [1, 8, 1, 8]
    assert sk["quality_flags"].map(list).tolist() == [[]] * 4  # a list even where nothing is flagged
    gen = frames["gen"]
    assert (gen["gen_tokens"] == 16).all() and gen["tokens_per_s"].notna().all() and gen["ttft_ms_p50"].notna().all()
    auto = frames["auto"]
    search = auto[auto["case_id"].str.contains("bsauto")]
    assert search["batch_size"].isna().all()  # never a silent 0
    assert (auto["hostname"] == "host-a").all() and auto["created"].dt.year.eq(2026).all()
    assert {"torch_version", "hwbench_version", "run_status", "results_file", "device_name"} <= set(auto.columns)
    assert auto["quality_flags"].map(lambda f: "energy_estimated" in f).sum() == 3
    assert "flags" not in auto.columns  # DataFrame.flags stays pandas' own
    # an empty results file gives the same columns
    empty = run_record([], run_id="run00000009")
    p = files["gen"].parent / "empty.json"
    write_atomic(p, empty)
    assert list(hwbench.load_results(p).columns[:len(COLUMNS)]) == list(COLUMNS)


def test_notebook_pivot_and_compare_in_a_few_lines(files, tmp_path):
    df = hwbench.load_results(list(files.values()))
    # throughput by precision x batch size, over whatever ran
    pivot = df.pivot_table(index="precision", columns="batch_size", values="throughput_samples_per_s", aggfunc="median")
    assert pivot.loc["fp32", 2] == pytest.approx(2 / 3e-3) and pivot.loc["bf16", 4] == pytest.approx(4 / 40e-3)
    gen = df[df["mode"] == "generate"].pivot_table(index="precision", columns="batch_size", values="tokens_per_s")
    assert gen.loc["fp32", 1] == pytest.approx(16 / 10e-3)
    # compare two runs by case_id: the same cases, measured again 10 % slower on another host
    a = df[df["run_id"] == "run00000002"]
    rec = run_record([ok_case(_ident("decoder:tiny", "generate", b, p, seq_len=32, gen_tokens=16), 11.0 * b)
                      for p in ("fp32", "bf16") for b in (1, 4)], hostname="host-b", run_id="run00000004")
    write_atomic(tmp_path / "b.json", rec)
    b = hwbench.load_results(tmp_path / "b.json")
    both = a.merge(b, on="case_id", suffixes=("_a", "_b"))
    ratio = both["latency_ms_p50_b"] / both["latency_ms_p50_a"]
    assert len(both) == 4 and ratio.round(6).eq(1.1).all()
    assert set(both["hostname_a"]) == {"host-a"} and set(both["hostname_b"]) == {"host-b"}
    # and the skipped-only run merges without a dtype error: its numbers are simply missing
    sk = hwbench.load_results(files["skipped"])
    m = sk.merge(df[df["run_id"] == "run00000003"], on="case_id", how="left", suffixes=("", "_auto"))
    assert m["throughput_samples_per_s_auto"].notna().sum() == 1  # fp32 bs1 ran in the auto run


def test_load_samples_returns_one_case_time_series(files):
    df = hwbench.load_results(files["auto"])
    cid = df.loc[df["status"] == "ok", "case_id"].iloc[0]
    s = hwbench.load_samples(files["auto"], cid)
    assert list(s.columns[:2]) == ["sampler", "t_s"] and list(s["t_s"]) == [0.0, 0.05, 0.1]
    assert s["cpu_util_pct"].isna().tolist() == [False, False, True]
    assert hwbench.load_samples(files["auto"], cid, sampler="nvidia").empty
    with pytest.raises(ResultsError, match="no case 'nope'"):
        hwbench.load_samples(files["auto"], "nope")


def test_parquet_roundtrip_keeps_types(files, tmp_path):
    pytest.importorskip("pyarrow")
    df = hwbench.load_results(list(files.values()))
    p = tmp_path / "r.parquet"
    df.to_parquet(p, index=False)
    back = pd.read_parquet(p)
    assert str(back["batch_size"].dtype) == "Int64" and list(back["quality_flags"].iloc[-1]) == ["energy_estimated"]


def test_router_balance_known_answer():
    from hwbench.analysis.derive import router_balance

    assert router_balance([[10, 10, 10, 10]]) == {"router_load_max_over_mean": 1.0, "router_load_cv": 0.0}
    got = router_balance([[30, 10, 0, 0], [10, 10, 10, 10]])
    assert got["router_load_max_over_mean"] == pytest.approx((3.0 + 1.0) / 2)
    assert router_balance([[0, 0]]) == {"router_load_max_over_mean": None, "router_load_cv": None}


def test_moe_and_distillation_columns_from_a_real_run(tmp_path):
    from conftest import run_suite

    body = ('[[matrix]]\nmodels=["moe:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'
            '[[matrix]]\nmodels=["llama:tiny"]\nmodes=["train"]\nbatch_sizes=[2]\nvariants=["distill:nano"]\n')
    rows, out = run_suite(tmp_path, body)
    df = hwbench.load_results(out.path)
    moe = df[df["family"] == "moe"].iloc[0]
    assert moe["status"] == "ok" and moe["active_params"] < moe["params"]
    assert moe["router_load_max_over_mean"] >= 1.0
    distill = df[df["variant"] == "distill:nano"].iloc[0]
    assert distill["status"] == "ok", distill["reason"]
    assert distill["student_model"] == "llama:nano" and 0 < distill["student_params"] < distill["params"]
