"""The ``comm`` dimension (gradient compression, hwbench.parallel.comm): the interval
analysis of exposed communication on constructed intervals with known answers (and a
property test against a brute-force oracle), the suite's one-line errors, the
capability checks, the compression ratio derived at load, and a real gloo group on CPU
(full tier) with comm none / fp16 / powersgd:1."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench.analysis.derive import compression_ratio
from hwbench.errors import ConfigError
from hwbench.parallel import comm, requires
from hwbench.spec import Case, Settings, parse_suite
from conftest import run_suite


# ------------------------------------------------------------------ interval analysis
@pytest.mark.parametrize("comm_iv,compute_iv,want", [
    ([(0, 10)], [], 10.0),  # nothing to hide behind
    ([(0, 10)], [(0, 10)], 0.0),  # fully overlapped
    ([(0, 10)], [(2, 5)], 7.0),  # a hole in the middle
    ([(0, 10)], [(-5, 3), (8, 20)], 5.0),  # covered at both ends
    ([(0, 4), (2, 6)], [(5, 9)], 5.0),  # comm overlapping itself counts once: [0, 6) less [5, 6)
    ([(0, 2), (4, 6), (8, 10)], [(1, 9)], 2.0),  # [0, 1) and [9, 10)
    ([(0, 10)], [(1, 2), (1.5, 3), (4, 5)], 7.0),  # overlapping compute: [1, 3) and [4, 5) covered
    ([(5, 5), (3, 1)], [(0, 1)], 0.0),  # empty / reversed intervals are nothing
])
def test_exposed_communication_on_constructed_intervals(comm_iv, compute_iv, want):
    assert comm.exposed(comm_iv, compute_iv) == pytest.approx(want)


def test_union_merges_touching_and_overlapping_intervals():
    assert comm.union([(3, 4), (0, 1), (1, 2), (0.5, 1.5)]) == [(0.0, 2.0), (3.0, 4.0)]


_iv = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)).map(sorted).map(tuple), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_iv, _iv)
def test_exposed_matches_a_unit_grid_oracle_and_is_at_most_the_busy_time(comm_iv, compute_iv):
    # integer endpoints: a unit cell [t, t+1) is exposed iff some comm interval covers it
    # and no compute interval does
    cells = sum(1 for t in range(40) if any(s <= t < e for s, e in comm_iv)
                and not any(s <= t < e for s, e in compute_iv))
    got = comm.exposed(comm_iv, compute_iv)
    assert got == pytest.approx(cells)
    assert got <= sum(e - s for s, e in comm_iv) + 1e-9  # never above the busy time


# ------------------------------------------------------------------ the suite
HEAD = '[suite]\nname = "t"\n[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["train"]\n'


def test_comm_expands_for_parallel_cases_and_keeps_old_case_ids():
    s = parse_suite(HEAD + 'parallelism=["none","ddp"]\nworld_sizes=[2]\ncomm=["none","fp16","powersgd:1"]\n')
    ids = [c.case_id for c in s.cases]
    assert ids == ["mlp:tiny/train/bs1/fp32/eager/cpu", "mlp:tiny/train/bs1/fp32/eager/cpu/ddp2",
                   "mlp:tiny/train/bs1/fp32/eager/cpu/ddp2/fp16", "mlp:tiny/train/bs1/fp32/eager/cpu/ddp2/powersgd:1"]
    assert Case("mlp:tiny", "train", 1, "fp32", "eager", "cpu", parallelism="ddp", world_size=2).case_id.endswith("/ddp2")


@pytest.mark.parametrize("body,msg", [
    ('parallelism=["ddp"]\ncomm=["fp8"]', "s.toml: matrix[0].comm[0]: 'fp8' is not a comm setting; allowed: none"),
    ('parallelism=["ddp"]\ncomm=["powersgd:0"]', "matrix[0].comm[0]: 'powersgd:0': the PowerSGD rank must be an "
                                                  "integer from 1"),
    ('parallelism=["ddp"]\ncomm=["powersgd:-1"]', "matrix[0].comm[0]: 'powersgd:-1' is not a comm setting"),
    ('parallelism=["ddp"]\ncomm=[4]', "matrix[0].comm[0]:"),
    ('comm=["fp16"]', "matrix[0].comm: applies to parallel cases only"),
])
def test_bad_comm_settings_are_one_line_errors(body, msg):
    with pytest.raises(ConfigError) as e:
        parse_suite(HEAD + body + "\n", "s.toml")
    assert msg in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bucket_cap_mb_must_be_positive(value):
    with pytest.raises(ConfigError) as e:
        parse_suite(f'[suite]\nname = "t"\n[settings]\nbucket_cap_mb = {value}\n' + HEAD.split("\n", 2)[2], "s.toml")
    assert "s.toml: settings.bucket_cap_mb: " in str(e.value) and "greater than 0" in str(e.value)


def test_combinations_that_cannot_run_are_skipped_with_the_reason():
    st_ = Settings()
    c = Case("mlp:tiny", "train", 1, "fp32", "eager", "cpu", parallelism="ddp", world_size=2)
    assert requires(c, "cpu", 1, st_) is None
    for cm in ("fp16", "powersgd:1"):
        assert requires(dataclasses.replace(c, comm=cm), "cpu", 1, st_) is None
    bf16 = requires(dataclasses.replace(c, comm="bf16"), "cpu", 1, st_)
    assert bf16.startswith("ddp: comm 'bf16': DDP accepts bf16_compress_hook only with CUDA 11+ and NCCL 2.10+")
    assert requires(dataclasses.replace(c, comm="bf16"), "cuda", 2, st_) is None
    ps = dataclasses.replace(c, parallelism="ps")
    assert requires(dataclasses.replace(ps, comm="bf16"), "cpu", 1, st_) is None  # ps casts, gloo sends bf16
    assert "PowerSGD is a DDP communication hook" in requires(dataclasses.replace(ps, comm="powersgd:1"), "cpu", 1, st_)
    fsdp = requires(dataclasses.replace(c, parallelism="fsdp", comm="fp16"), "cpu", 1, st_)
    assert fsdp == "fsdp: comm 'fp16': gradient compression applies to ddp and ps, not fsdp"


# ------------------------------------------------------------------ derived at load
def test_compression_ratio_is_against_the_same_case_with_comm_none_in_the_same_run():
    def row(cm, nbytes, run="r", ws=2, status="ok"):
        return {"run_id": run, "hostname": "h", "model": "mlp:tiny", "parallelism": "ddp", "world_size": ws,
                "comm": cm, "comm_bytes_per_step": nbytes, "status": status}

    rows = [row("none", 1000.0), row("fp16", 500.0), row("powersgd:1", 40.0), row("fp16", 250.0, ws=4),
            row("fp16", 500.0, run="other")]
    compression_ratio(rows)
    assert [r["comm_compression_ratio"] for r in rows] == [1.0, 2.0, 25.0, None, None]


def test_relative_l2_of_parameters():
    import torch

    ref = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    assert comm.rel_l2(ref, ref) == 0.0
    assert comm.rel_l2([torch.tensor([3.0, 0.5]), torch.tensor([4.0])], ref) == pytest.approx(0.1)
    assert comm.rel_l2([torch.zeros(1)], [torch.zeros(1)]) is None


# ------------------------------------------------------------------ a real gloo group
FAST = "min_time_s = 0.02\nmin_iters = 3\nwarmup_iters = 1\ncomm_profile_steps = 2\ntimeout_s = 180"


@pytest.mark.full
def test_ddp_with_fp16_and_powersgd_on_gloo_records_bytes_overlap_and_accuracy_cost(tmp_path):
    import hwbench

    body = ('[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\nparallelism=["ddp"]\n'
            'world_sizes=[2]\ncomm=["none","fp16","powersgd:1","bf16"]\n')
    rows, out = run_suite(tmp_path, body, settings=FAST)
    by = {r["comm"]: r for r in rows.values()}
    assert by["bf16"]["status"] == "skipped" and "bf16_compress_hook" in by["bf16"]["reason"]
    ok = [by[k] for k in ("none", "fp16", "powersgd:1")]
    assert all(r["status"] == "ok" for r in ok), [(r["case_id"], r["reason"]) for r in ok]
    df = hwbench.load_results(out.path)
    cols = {"comm", "comm_bytes_per_step", "comm_compression_ratio", "comm_busy_ms", "comm_exposed_ms",
            "param_rel_l2_vs_none"}
    assert cols <= set(df.columns)
    none, fp16, psgd = ok
    assert none["comm_compression_ratio"] == 1.0
    assert fp16["comm_compression_ratio"] == pytest.approx(2.0, rel=0.05)
    assert psgd["comm_bytes_per_step"] < fp16["comm_bytes_per_step"]
    # PowerSGD rank 1 on mlp:tiny (Linear 64->128, 128->128, 128->10): the biases
    # uncompressed (128 + 128 + 10), P (n x 1: 128 + 128 + 10), Q (m x 1: 64 + 128 + 128),
    # fp32, in three allreduces (the last two from gloo's callback threads)
    assert psgd["comm_bytes_per_step"] == 4 * (266 + 266 + 320)
    for r in ok:
        assert 0 <= r["comm_exposed_ms"] <= r["comm_busy_ms"]
        assert r["param_rel_l2_steps"] == 5
    assert none["param_rel_l2_vs_none"] == 0.0  # gloo's allreduce of 2 ranks is deterministic
    assert fp16["param_rel_l2_vs_none"] > 0 and psgd["param_rel_l2_vs_none"] > 0


# ------------------------------------------------------------------ reports, from synthetic results
def _comm_frame():
    from hwbench.analysis.derive import record_rows, to_frame
    from hwbench.records import CaseIdentity, CaseResult, Facts, Measurement
    from test_dataframe import run_record

    def case(cm, step_s, nbytes, busy_s, exposed_s, dev):
        i = CaseIdentity(model="mlp:tiny", mode="train", batch_size=4, precision="fp32", backend="eager", device="cpu",
                         parallelism="ddp", world_size=2, comm=cm)
        cid = "mlp:tiny/train/bs4/fp32/eager/cpu/ddp2" + ("" if cm == "none" else f"/{cm}")
        return CaseResult(case_id=cid, case=i, status="ok", device_name="Test CPU", device_resolved="cpu",
                          measurement=Measurement(raw_times_s=[[step_s] * 5], first_iter_s=0.2, warmup_s=0.3,
                                                  measured_s=5 * step_s),
                          facts=Facts(params=1000, flops_per_sample=1e6, global_batch_size=8, comm_s_per_step=busy_s,
                                      comm_bytes_per_step=nbytes, comm_exposed_s_per_step=exposed_s,
                                      param_rel_l2_vs_none=dev, param_rel_l2_steps=5))

    rec = run_record([case("none", 0.100, 8000.0, 0.040, 0.010, 0.0), case("fp16", 0.080, 4000.0, 0.020, 0.005, 1e-4),
                      case("powersgd:1", 0.050, 400.0, 0.030, 0.0, 2e-3)])
    return to_frame(record_rows(rec))


def test_comm_vs_none_table_with_known_answers():
    from hwbench.analysis import scaling as sc

    df = _comm_frame()
    assert list(df["comm_busy_ms"]) == pytest.approx([40.0, 20.0, 30.0])
    assert list(df["comm_exposed_ms"]) == pytest.approx([10.0, 5.0, 0.0])
    t = sc.comm_vs_none(df)
    assert list(t["comm"]) == ["none", "fp16", "powersgd:1"]
    assert list(t["step_speedup_vs_none"]) == pytest.approx([1.0, 1.25, 2.0])
    assert list(t["comm_compression_ratio"]) == pytest.approx([1.0, 2.0, 20.0])
    assert list(t["param_rel_l2_vs_none"]) == pytest.approx([0.0, 1e-4, 2e-3])
    assert (t["comm_exposed_ms_none"] == 10.0).all()
    # every setting its own scaling curve: none of them hides another
    assert len(sc.parallel_scaling(df)) == 3


def test_comm_table_in_the_terminal_view_fits_80_columns_and_keeps_the_accuracy_cost():
    from hwbench.report.sections.parallel import comm_sections
    from hwbench.report.views import render_terminal

    lines = render_terminal(comm_sections(_comm_frame()), 80)
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "param dev" in text and "powersgd:1" in text and "2.00×" in text


def test_html_parallel_section_has_the_comm_table():
    from hwbench.report.html import render_html

    html = render_html(_comm_frame(), [])
    assert "Gradient compression (comm) against none" in html and "comm-vs-none.csv" in html


def test_ddp_make_step_applies_bucket_cap_and_hooks_in_a_one_rank_group(tmp_path):
    """In this process (no worker starts): a gloo group of one rank."""
    import torch
    import torch.distributed as dist

    from hwbench import backends, models
    from hwbench.parallel import ddp
    from hwbench.parallel.mesh import Mesh

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        fam, size = models.get("mlp:tiny")
        cfg = fam.sizes[size]
        case = Case("mlp:tiny", "train", 4, "fp32", "eager", "cpu", parallelism="ddp", world_size=1)
        mesh = Mesh("ddp", 1, 0, 0, 1, "cpu", "gloo", 4, 4)
        for cm, state in (("fp16", None), ("powersgd:4", 4)):
            torch.manual_seed(0)
            prep = backends.prepare(fam.build(cfg), case, torch.device("cpu"), fam.float_inputs)
            x, y = fam.make_batch(cfg, 4, case.shape, torch.device("cpu"), torch.float32)
            step = ddp.make_step(prep, fam, x, y, mesh, lambda m: m, comm=cm, bucket_cap_mb=0.5)
            if state is None:
                assert prep.model.bucket_bytes_cap == int(0.5 * 1024 * 1024)
            else:  # PowerSGD on gloo: one bucket holds every gradient (ddp.one_bucket_on_gloo)
                grads = sum(p.numel() * p.element_size() for p in prep.model.parameters())
                assert prep.model.bucket_bytes_cap >= grads
            for _ in range(3):
                step()
            if state is None:
                assert step.powersgd is None
            else:
                assert step.powersgd.matrix_approximation_rank == 4
                assert step.powersgd.start_powerSGD_iter == comm.POWERSGD_START
                assert step.powersgd.iter >= comm.POWERSGD_START  # compressing after the warmup steps
    finally:
        dist.destroy_process_group()


def test_powersgd_on_gloo_gets_one_bucket_holding_every_gradient():
    """PowerSGD's hook chains each bucket's allreduces in gloo's callback threads: with
    several buckets two ranks issue them in different orders and deadlock (mlp:base at
    2 ranks did), so on CPU the bucket holds the whole model; elsewhere nothing changes."""
    import types

    import torch

    from hwbench.parallel.ddp import one_bucket_on_gloo

    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 1024))  # 8 MiB of fp32
    cpu, cuda = types.SimpleNamespace(device_type="cpu"), types.SimpleNamespace(device_type="cuda")
    mib = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    assert one_bucket_on_gloo(model, "powersgd:1", cpu, None) == pytest.approx(mib + 1)
    assert one_bucket_on_gloo(model, "powersgd:1", cpu, 1.0) == pytest.approx(mib + 1)
    assert one_bucket_on_gloo(model, "powersgd:1", cpu, 100.0) == 100.0  # already one bucket
    assert one_bucket_on_gloo(model, "powersgd:1", cuda, None) is None
    assert one_bucket_on_gloo(model, "fp16", cpu, 2.0) == 2.0
    assert one_bucket_on_gloo(model, "none", cpu, None) is None
