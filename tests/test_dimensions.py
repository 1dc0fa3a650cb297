"""Hardware-aware dimensions: precision, variants and their accuracy cost, generation,
FLOPs / MFU, auto batch search, compile -- with real torch and real worker processes."""

import pytest
import torch

from hwbench import backends, flops, models, workloads
from hwbench.case import Case
from hwbench.devices import DeviceInfo
from hwbench.errors import ConfigError
from hwbench.results import read_record
from hwbench.spec import load_suite, parse_suite
from hwbench.variants import mask_2_4
from conftest import ROOT, hwbench, run_suite


def test_precisions_and_variants_run_on_cpu_with_their_accuracy_cost(tmp_path):
    body = ('[[matrix]]\nmodels=["decoder:tiny"]\nbatch_sizes=[2]\nprecisions=["fp32","bf16","int8"]\n'
            'variants=["none","prune:0.5"]\n')
    rows, _ = run_suite(tmp_path, body)
    ref = rows["decoder:tiny/infer/bs2/seq32/fp32/eager/cpu"]
    assert ref["status"] == "ok" and "max_abs_error" not in ref  # the reference itself
    for cid, c in rows.items():
        if cid.endswith("int8/eager/cpu/prune:0.5"):
            assert c["status"] == "skipped" and "not combined with int8" in c["reason"]
            continue
        assert c["status"] == "ok", (cid, c["reason"])
        if c is not ref:
            assert c["max_abs_error"] > 0 and 0 < c["rel_l2_error"] < 1, cid
    bf16 = rows["decoder:tiny/infer/bs2/seq32/bf16/eager/cpu"]
    pruned = rows["decoder:tiny/infer/bs2/seq32/fp32/eager/cpu/prune:0.5"]
    int8 = rows["decoder:tiny/infer/bs2/seq32/int8/eager/cpu"]
    assert bf16["accuracy_model"] == "eager"
    assert bf16["rel_l2_error"] < 0.05 < pruned["rel_l2_error"]  # halving the weights costs more than bf16
    assert pruned["pruned_layers"] == 12
    # int8 through torchao: its matmuls are counted, never stored as a 0 ratio
    assert int8["int8_layers"] > 0 and int8["flops_counted_vs_analytic"] == pytest.approx(1.0, rel=0.02)


def test_generation_reports_ttft_tpot_tokens_and_flops(tmp_path):
    body = '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nbatch_sizes=[2]\nseq_lens=[16]\noutput_lens=[8]\n'
    rows, out = run_suite(tmp_path, body)
    c = rows["decoder:tiny/generate/bs2/seq16+gen8/fp32/eager/cpu"]
    assert c["status"] == "ok", c["reason"]
    assert 0 < c["ttft_ms_p50"] < c["latency_ms_p50"]
    m = out.record.cases[0].measurement
    assert len(m.ttft_s) == len(m.decode_s) == c["iterations"]  # one pair per timed iteration, one clock
    assert c["tpot_ms_p50"] == pytest.approx(sorted(d * 1e3 / 7 for d in m.decode_s)[len(m.decode_s) // 2], rel=0.5)
    assert c["tokens_per_s"] == pytest.approx(2 * 8 / (c["latency_ms_p50"] / 1e3))
    assert c["flops_counted_vs_analytic"] == pytest.approx(1.0, rel=0.02)
    assert c["gen_tokens"] == 8


def test_flop_counter_sees_cpu_attention():
    fam, size = models.get("decoder:tiny")
    cfg = fam.sizes[size]
    case = Case("decoder:tiny", "infer", 2, "fp32", "eager", "cpu", seq_len=32)
    prep = backends.prepare(fam.build(cfg), case, torch.device("cpu"), False)
    x, y = fam.make_batch(cfg, 2, case.shape, "cpu", torch.long)
    counted = flops.count(workloads.make_step("infer", prep, fam.loss, x, y)) / 2
    assert counted == pytest.approx(fam.flops_per_sample(size, "infer", case.shape), rel=1e-6)


def test_mfu_is_derived_at_load_from_the_recorded_environment(tmp_path):
    rows, out = run_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\n')
    (row,) = rows.values()
    env = out.record.environment
    if env.cpu_freq_max_mhz is None:  # this machine does not say its max clock: no guess
        assert row["mfu"] is None and row["peak_tflops"] is None and "clock" in row["mfu_reason"]
    else:
        assert row["peak_tflops"] > 0 and row["mfu"] == pytest.approx(row["achieved_tflops"] / row["peak_tflops"])
        assert "cpu formula" in row["peak_source"]


def test_auto_batch_finds_the_limit_under_a_memory_cap_and_sweeps_powers_of_two(tmp_path):
    # mlp:tiny inference: about 1.2 KiB of activations per sample, so the 2 GiB cap
    # (the worker itself takes about 0.7 GiB) is reached near a million samples, in
    # plain torch allocations that fail cleanly (no native-code crash under RLIMIT_AS).
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=["auto"]\n'
    rows, out = run_suite(tmp_path, body, settings="memory_limit_gb = 1.2\nmin_time_s = 0.01\nmin_iters = 1\n"
                          "max_batch_size = 16777216\ncollectors = []\ncheck_accuracy = false\ncount_flops = false")
    rec = out.record
    assert rec.batch_limits, [(c["case_id"], c["status"], c["reason"]) for c in rows.values()]
    (key, info), = rec.batch_limits.items()
    limit = info.batch_limit
    assert key == "mlp:tiny/infer/bsauto/fp32/eager/cpu"
    assert 1 <= limit < 16777216 and info.limited_by.startswith("out of memory at batch size"), info
    assert any(not t["fits"] for t in info.tries)  # it really ran out of memory, and survived
    sizes = sorted(c.case.batch_size for c in rec.cases)
    assert sizes == [2**k for k in range(limit.bit_length())]
    assert all(c.status == "ok" for c in rec.cases), [(c.case_id, c.reason) for c in rec.cases if c.status != "ok"]


def test_precision_suite_dry_run_lists_every_case_to_run_and_groups_skips():
    r = hwbench("run", "suites/precision.toml", "--dry-run", env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    s = load_suite(ROOT / "suites" / "precision.toml")
    head = r.stdout.splitlines()[0]  # "precision: 46 cases: 14 to run, 32 skipped"
    n_run = int(head.split(" to run")[0].rsplit(" ", 1)[1])
    n_skip = int(head.split(" to run, ")[1].split()[0]) if " skipped" in head else 0
    assert n_run + n_skip == len(s.cases)
    listed = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith(("encoder:", "decoder:"))]
    assert len(listed) == n_run
    if not torch.cuda.is_available():
        # one line per reason, with a count and an example, not one line per case
        assert r.stdout.count("fp8 needs a CUDA or ROCm device (CUDA: compute capability >= 8.9") == 1


@pytest.mark.parametrize(
    "case,dev,needle",
    [
        (Case("mlp:tiny", "infer", 1, "fp8", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "A100", (8, 0)), "fp8 needs"),
        (Case("mlp:tiny", "train", 1, "fp8", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "H100", (9, 0)), "inference-only"),
        (Case("mlp:tiny", "infer", 1, "bf16", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "V100", (7, 0)), "bf16 needs compute capability >= 8.0"),
        (Case("mlp:tiny", "infer", 1, "bf16", "eager", "cpu", variant="sparse24"), DeviceInfo("cpu", "cpu", "x"), "sparse24"),
        (Case("decoder:tiny", "generate", 1, "fp32", "compile", "cpu", seq_len=8, gen_tokens=4), DeviceInfo("cpu", "cpu", "x"), "KV cache"),
        (Case("mlp:tiny", "infer", 1, "fp32", "cudagraphs", "cpu"), DeviceInfo("cpu", "cpu", "x"), "cudagraphs backend needs a CUDA or ROCm device"),
        (Case("mlp:tiny", "infer", 1, "fp32", "eager", "cuda", threads=2), DeviceInfo("cuda:0", "cuda", "H100", (9, 0)), "threads applies to CPU"),
    ],
)
def test_capability_reasons(case, dev, needle):
    assert needle in backends.unsupported_reason(case, dev)


def test_supported_combinations_have_no_reason():
    h100 = DeviceInfo("cuda:0", "cuda", "NVIDIA H100 80GB HBM3", (9, 0))
    for p in ("fp32", "tf32", "fp16", "bf16", "amp_fp16", "amp_bf16", "fp8"):
        assert backends.unsupported_reason(Case("encoder:tiny", "infer", 1, p, "eager", "cuda", seq_len=32), h100) is None
    assert backends.unsupported_reason(Case("mlp:tiny", "infer", 1, "bf16", "cudagraphs", "cuda", variant="sparse24"), h100) is None


@pytest.mark.gpu
def test_fp8_through_torchao_on_a_gpu_that_has_it():
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 needs compute capability >= 8.9")
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32).to(torch.bfloat16).cuda()
    x = torch.randn(8, 64, dtype=torch.bfloat16, device="cuda")
    ref = lin(x).float()
    case = Case("mlp:tiny", "infer", 8, "fp8", "eager", "cuda")
    prep = backends.prepare(torch.nn.Sequential(lin), case, torch.device("cuda"), True)
    assert prep.changes.get("fp8_layers") == 1
    out = prep.model(x).float()
    assert ((out - ref).norm() / ref.norm()).item() < 0.05


def test_2_4_mask_keeps_two_of_every_four_largest():
    w = torch.tensor([[1.0, -4.0, 3.0, 0.5, 0.1, 0.2, -0.3, 0.4]])
    torch.testing.assert_close(mask_2_4(w), torch.tensor([[0.0, -4.0, 3.0, 0.0, 0.0, 0.0, -0.3, 0.4]]))


def test_spec_for_new_dimensions():
    head = '[suite]\nname="x"\n'
    s = parse_suite(head + '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nbatch_sizes=["auto",4]\noutput_lens=[8]\nvariants=["none","prune:0.25"]\n')
    ids = [c.case_id for c in s.cases]
    assert "decoder:tiny/generate/bsauto/seq32+gen8/fp32/eager/cpu" in ids
    assert "decoder:tiny/generate/bs4/seq32+gen8/fp32/eager/cpu/prune:0.25" in ids
    assert parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nvariants=["prune:.5","prune:0.50","prune:0.5"]\n').cases == \
        parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nvariants=["prune:0.5"]\n').cases  # one case id, not three
    with pytest.raises(ConfigError, match="unknown variant 'prune:2'"):
        parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nvariants=["prune:2"]\n')
    with pytest.raises(ConfigError, match="prompt 120 \\+ 16 generated tokens exceeds decoder:tiny's context of 128"):
        parse_suite(head + '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nseq_lens=[120]\noutput_lens=[16]\n')
    with pytest.raises(ConfigError, match="batch_sizes"):
        parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=["max"]\n')


@pytest.mark.slow
def test_compile_backend_on_cpu_records_compile_time(tmp_path):
    rows, _ = run_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nbackends=["compile"]\nbatch_sizes=[4]\n',
                        settings="timeout_s = 300")
    (c,) = rows.values()
    assert c["status"] == "ok", c["reason"]
    assert c["compile_s"] > 10 * c["latency_ms_p50"] / 1e3  # tracing + codegen dwarf a step
    assert c["accuracy_model"] == "compiled"  # the deviation is that of the compiled model
    assert c["max_abs_error"] < 1e-4  # inductor's fp32 numerics match eager fp32


@pytest.mark.gpu
def test_gpu_precisions_compile_and_energy_on_real_hardware(tmp_path):
    body = ('[[matrix]]\nmodels=["encoder:tiny"]\nbatch_sizes=[8]\ndevices=["cuda"]\n'
            'precisions=["fp32","tf32","bf16","amp_fp16","fp8"]\nbackends=["eager","cudagraphs"]\n')
    rows, _ = run_suite(tmp_path, body, settings="min_energy_window_s = 2")
    for cid, c in rows.items():
        assert c["status"] in ("ok", "skipped"), (cid, c["reason"])
        if c["status"] == "ok":
            assert c["memory_peak_bytes"] > 0
            assert c["energy_source"] in ("nvml_counter", "nvml_power")


def test_training_deviation_is_measured_before_the_weights_change(tmp_path):
    rows, _ = run_suite(tmp_path, '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[2]\nprecisions=["bf16"]\n')
    (c,) = rows.values()
    assert c["status"] == "ok", c["reason"]
    assert c["accuracy_model"] == "eager" and 0 < c["rel_l2_error"] < 0.1
