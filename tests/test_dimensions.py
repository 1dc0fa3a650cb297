"""Hardware-aware dimensions: precision, variants and their accuracy cost, generation,
FLOPs / MFU, auto batch search, compile -- with real torch and real worker processes."""

import pytest
import torch

from hwbench import backends, env, flops, models, peaks, runner, workloads
from hwbench.devices import DeviceInfo
from hwbench.errors import ConfigError
from hwbench.spec import Case, load_suite, parse_suite
from hwbench.variants import FP8Linear, mask_2_4, to_fp8
from conftest import ROOT, hwbench, write_suite


def run_suite(tmp_path, body, settings=""):
    s = load_suite(write_suite(tmp_path, body, settings="idle_baseline_s = 0\n" + settings))
    r = runner.Runner(s, tmp_path / "out.json")
    rec = r.run(runner.plan(s), r.new_record(env.fingerprint()))
    return {c["case_id"]: c for c in rec["cases"]}, rec


def test_precisions_and_variants_run_on_cpu_with_their_accuracy_cost(tmp_path):
    body = ('[[matrix]]\nmodels=["decoder:tiny"]\nbatch_sizes=[2]\nprecisions=["fp32","bf16","int8"]\n'
            'variants=["none","prune:0.5"]\n')
    cases, _ = run_suite(tmp_path, body)
    ref = cases["decoder:tiny/infer/bs2/seq32/fp32/eager/cpu"]
    assert ref["status"] == "ok" and "max_abs_error" not in ref["metrics"]  # the reference itself
    for cid, c in cases.items():
        if cid.endswith("int8/eager/cpu/prune:0.5"):
            assert c["status"] == "skipped" and "not combined with int8" in c["reason"]
            continue
        assert c["status"] == "ok", (cid, c["reason"])
        if c is not ref:
            m = c["metrics"]
            assert m["max_abs_error"] > 0 and 0 < m["rel_l2_error"] < 1, cid
    bf16 = cases["decoder:tiny/infer/bs2/seq32/bf16/eager/cpu"]["metrics"]
    pruned = cases["decoder:tiny/infer/bs2/seq32/fp32/eager/cpu/prune:0.5"]["metrics"]
    assert bf16["accuracy_model"] == "eager"
    assert bf16["rel_l2_error"] < 0.05 < pruned["rel_l2_error"]  # halving the weights costs more than bf16
    assert pruned["pruned_layers"] == 12


def test_generation_reports_ttft_tpot_tokens_and_flops(tmp_path):
    body = '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nbatch_sizes=[2]\nseq_lens=[16]\noutput_lens=[8]\n'
    cases, _ = run_suite(tmp_path, body)
    c = cases["decoder:tiny/generate/bs2/seq16+gen8/fp32/eager/cpu"]
    assert c["status"] == "ok", c["reason"]
    m = c["metrics"]
    assert 0 < m["ttft_ms_p50"] < m["latency_ms_p50"]
    assert m["tpot_ms_p50"] == pytest.approx((m["latency_ms_p50"] - m["ttft_ms_p50"]) / 7)
    assert m["tokens_per_s"] == pytest.approx(2 * 8 / (m["latency_ms_p50"] / 1e3))
    assert m["flops_counted_vs_analytic"] == pytest.approx(1.0, rel=0.02)


def test_flop_counter_sees_cpu_attention():
    fam, size = models.get("decoder:tiny")
    cfg = fam.sizes[size]
    case = Case("decoder:tiny", "infer", 2, "fp32", "eager", "cpu", seq_len=32)
    prep = backends.prepare(fam.build(cfg), case, torch.device("cpu"), False)
    x, y = fam.make_batch(cfg, 2, case.shape, "cpu", torch.long)
    counted = flops.count(workloads.make_step("infer", prep, fam.loss, x, y)) / 2
    assert counted == pytest.approx(fam.flops_per_sample(size, "infer", case.shape), rel=1e-6)


def test_mfu_against_known_peaks_and_none_for_unknown():
    assert peaks.accelerator_peak_tflops("NVIDIA H100 80GB HBM3", "amp_bf16") == 989.4
    assert peaks.accelerator_peak_tflops("NVIDIA H100 PCIe", "fp8") == 1513.0
    assert peaks.accelerator_peak_tflops("NVIDIA A100-SXM4-80GB", "tf32") == 156.0
    assert peaks.accelerator_peak_tflops("AMD Instinct MI300X", "bf16") == 1307.4
    assert peaks.accelerator_peak_tflops("Tesla T4", "fp16") is None
    assert peaks.cpu_peak_tflops("fp32", 2, 2500.0, {"avx512f"}) == pytest.approx(2 * 2.5e9 * 16 * 2 * 2 / 1e12)
    assert peaks.cpu_peak_tflops("bf16", 2, 2500.0, {"avx512f", "avx512_bf16"}) == pytest.approx(2 * 0.32)
    assert peaks.cpu_peak_tflops("fp32", 2, 2500.0, set()) is None
    assert peaks.cpu_peak_tflops("fp32", 2, None, {"avx2", "fma"}) is None


def test_auto_batch_finds_the_limit_under_a_memory_cap_and_sweeps_powers_of_two(tmp_path):
    body = '[[matrix]]\nmodels=["cnn:tiny"]\nmodes=["train"]\nbatch_sizes=["auto"]\nimage_sizes=[224]\n'
    # 2 GiB of address space: the worker itself takes about 0.7 GiB (torch, thread
    # stacks, malloc arenas), the rest is for the model and its activations.
    cases, rec = run_suite(tmp_path, body, settings="memory_limit_gb = 2.0\nmin_time_s = 0.02\ncollectors = []")
    assert rec.get("batch_limits"), [(c["case_id"], c["status"], c["reason"]) for c in cases.values()]
    (key, info), = rec["batch_limits"].items()
    limit = info["batch_limit"]
    assert key == "cnn:tiny/train/bsauto/img224/fp32/eager/cpu"
    assert 1 <= limit < 4096 and info["limited_by"].startswith("out of memory at batch size")
    assert any(not t["fits"] for t in info["tries"])  # it really ran out of memory, and survived
    sizes = sorted(c["case"]["batch_size"] for c in cases.values())
    assert sizes == [2**k for k in range(limit.bit_length())]
    assert all(c["status"] == "ok" for c in cases.values())


def test_precision_suite_dry_run_lists_every_case_with_run_or_reason():
    r = hwbench("run", "suites/precision.toml", "--dry-run", env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    s = load_suite(ROOT / "suites" / "precision.toml")
    for c in s.cases:
        assert c.case_id in r.stdout
    rows = [line for line in r.stdout.splitlines() if "/" in line and ("run on" in line or "skip:" in line)]
    assert len(rows) == len(s.cases)
    if not torch.cuda.is_available():
        assert "fp8 needs a CUDA GPU with compute capability >= 8.9" in r.stdout


@pytest.mark.parametrize(
    "case,dev,needle",
    [
        (Case("mlp:tiny", "infer", 1, "fp8", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "A100", (8, 0)), "fp8 needs"),
        (Case("mlp:tiny", "train", 1, "fp8", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "H100", (9, 0)), "inference-only"),
        (Case("mlp:tiny", "infer", 1, "bf16", "eager", "cuda"), DeviceInfo("cuda:0", "cuda", "V100", (7, 0)), "bf16 needs compute capability >= 8.0"),
        (Case("mlp:tiny", "infer", 1, "bf16", "eager", "cpu", variant="sparse24"), DeviceInfo("cpu", "cpu", "x"), "sparse24"),
        (Case("decoder:tiny", "generate", 1, "fp32", "compile", "cpu", seq_len=8, gen_tokens=4), DeviceInfo("cpu", "cpu", "x"), "KV cache"),
        (Case("mlp:tiny", "infer", 1, "fp32", "cudagraphs", "cpu"), DeviceInfo("cpu", "cpu", "x"), "cudagraphs backend needs a CUDA device"),
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


def test_fp8_linear_numerics_on_cpu():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32).to(torch.bfloat16)
    x = torch.randn(8, 64, dtype=torch.bfloat16)
    ref = lin(x).float()
    m = torch.nn.Sequential(lin)
    assert to_fp8(m) == {"fp8_layers": 1, "bf16_layers_left": 0}
    assert isinstance(m[0], FP8Linear)
    out = m(x).float()
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
    with pytest.raises(ConfigError, match="unknown variant 'prune:2'"):
        parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nvariants=["prune:2"]\n')
    with pytest.raises(ConfigError, match="prompt 120 \\+ 16 generated tokens exceeds decoder:tiny's context of 128"):
        parse_suite(head + '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nseq_lens=[120]\noutput_lens=[16]\n')
    with pytest.raises(ConfigError, match="batch_sizes"):
        parse_suite(head + '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=["max"]\n')


@pytest.mark.slow
def test_compile_backend_on_cpu_records_compile_time(tmp_path):
    cases, _ = run_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nbackends=["compile"]\nbatch_sizes=[4]\n',
                         settings="timeout_s = 300")
    (c,) = cases.values()
    assert c["status"] == "ok", c["reason"]
    m = c["metrics"]
    assert m["compile_s"] > 10 * m["latency_ms_p50"] / 1e3  # tracing + codegen dwarf a step
    assert m["accuracy_model"] == "compiled"  # the deviation is that of the compiled model
    assert m["max_abs_error"] < 1e-4  # inductor's fp32 numerics match eager fp32


@pytest.mark.gpu
def test_gpu_precisions_compile_and_energy_on_real_hardware(tmp_path):
    body = ('[[matrix]]\nmodels=["encoder:tiny"]\nbatch_sizes=[8]\ndevices=["cuda"]\n'
            'precisions=["fp32","tf32","bf16","amp_fp16","fp8"]\nbackends=["eager","cudagraphs"]\n')
    cases, rec = run_suite(tmp_path, body, settings="min_energy_window_s = 2")
    for cid, c in cases.items():
        assert c["status"] in ("ok", "skipped"), (cid, c["reason"])
        if c["status"] == "ok":
            assert c["metrics"]["memory_peak_bytes"] > 0
            assert c["energy"]["energy_source"] in ("nvml_counter", "nvml_power")


def test_training_deviation_is_measured_before_the_weights_change(tmp_path):
    cases, _ = run_suite(tmp_path, '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[2]\nprecisions=["bf16"]\n')
    (c,) = cases.values()
    assert c["status"] == "ok", c["reason"]
    m = c["metrics"]
    assert m["accuracy_model"] == "eager" and 0 < m["rel_l2_error"] < 0.1
