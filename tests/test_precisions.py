"""Precision, backend and variant registries: declared capabilities and their reasons,
canonical variant names, torchao int8 on CPU, FLOPs of quantised models, and that a
new precision is one registered object."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from hwbench import backends, flops, precisions, variants
from hwbench.case import Case
from hwbench.devices import DeviceInfo
from hwbench.spec import parse_suite

CPU = DeviceInfo("cpu", "cpu", "x86 CPU")
V100 = DeviceInfo("cuda:0", "cuda", "Tesla V100", (7, 0))
A100 = DeviceInfo("cuda:0", "cuda", "NVIDIA A100-SXM4-80GB", (8, 0))
H100 = DeviceInfo("cuda:0", "cuda", "NVIDIA H100 80GB HBM3", (9, 0))
MPS = DeviceInfo("mps", "mps", "Apple MPS")


def case(precision="fp32", mode="infer", backend="eager", device="cpu", variant="none", **kw):
    return Case("mlp:tiny", mode, 1, precision, backend, device, variant=variant, **kw)


def test_registries_import_without_torch():
    code = "import sys, hwbench.precisions, hwbench.backends, hwbench.variants; assert 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "c,dev,expected",
    [
        (case("fp32"), CPU, None),
        (case("fp32"), MPS, None),
        (case("tf32"), CPU, "tf32 needs a CUDA GPU with compute capability >= 8.0 (Ampere or later) (this device is cpu)"),
        (case("tf32"), V100, "tf32 needs a CUDA GPU with compute capability >= 8.0 (Ampere or later) (this GPU has 7.0)"),
        (case("tf32"), A100, None),
        (case("bf16"), V100, "bf16 needs compute capability >= 8.0 on CUDA GPUs (this GPU has 7.0)"),
        (case("bf16"), CPU, None),
        (case("amp_bf16"), A100, None),
        (case("fp16", mode="train"), CPU, "fp16 training on cpu is not supported by hwbench (use bf16 or amp_bf16)"),
        (case("fp16", mode="train"), V100, None),
        (case("int8"), CPU, None),
        (case("int8", mode="train"), CPU, "int8 is inference-only"),
        (case("int8"), MPS, "int8 needs a CPU or CUDA or ROCm device"),
        (case("int8"), V100, "int8 needs compute capability >= 8.0 on CUDA GPUs"),
        (case("int8"), H100, None),
        (case("fp8"), CPU, "fp8 needs a CUDA or ROCm device (CUDA: compute capability >= 8.9; ROCm: gfx942"),
        (case("fp8"), A100, "(this GPU has 8.0)"),
        (case("fp8"), H100, None),
        (case("fp8", mode="train"), H100, "fp8 is inference-only"),
        (case("bf16", variant="sparse24"), CPU, "sparse24 needs a CUDA GPU with compute capability >= 8.0"),
        (case("bf16", variant="sparse24"), V100, "(this GPU has 7.0)"),
        (case("fp32", variant="sparse24"), A100, "sparse24 needs fp16 or bf16 weights (fp32 keeps fp32 weights)"),
        (case("amp_fp16", variant="sparse24"), A100, "sparse24 needs fp16 or bf16 weights"),
        (case("fp16", variant="sparse24", mode="train"), H100, "sparse24 is inference-only"),
        (case("fp16", variant="sparse24", backend="cudagraphs"), H100, None),
        (case("int8", variant="prune:0.5"), CPU, "variant prune:0.5 is not combined with int8 (both rewrite the Linear layers)"),
        (case("fp8", variant="prune:0.5"), H100, "not combined with fp8"),
        (case(backend="cudagraphs"), CPU, "cudagraphs backend needs a CUDA or ROCm device (this device is cpu)"),
        (case(backend="cudagraphs"), V100, None),
        (Case("decoder:tiny", "generate", 1, "fp32", "compile", "cpu", seq_len=8, gen_tokens=4), CPU,
         "generate with the compile backend is not supported (the KV cache changes shape every step)"),
        (case("int8wo"), CPU, None),
        (case("int8wo"), H100, None),
        (case("int8wo"), V100, "int8wo needs compute capability >= 8.0 on CUDA GPUs (bf16 activations) (this GPU has 7.0)"),
        (case("int8wo"), MPS, "int8wo needs a CPU or CUDA or ROCm device"),
        (case("int8wo", mode="train"), CPU, "int8wo is inference-only"),
        (case("int4wo"), CPU, "int4wo needs a CUDA GPU with compute capability >= 8.0 (torchao's int4 weight-only kernel "
                              "is tinygemm's aten._weight_int4pack_mm; torchao 0.18 has no CPU layout for "
                              "Int4WeightOnlyConfig) (this device is cpu)"),
        (case("int4wo"), V100, "(this GPU has 7.0)"),
        (case("int4wo"), A100, None),
        (case("int4wo", mode="train"), A100, "int4wo is inference-only"),
        (case("fp8_rowwise"), CPU, "fp8_rowwise needs a CUDA GPU with compute capability >= 8.9"),
        (case("fp8_rowwise"), A100, "(this GPU has 8.0)"),
        (case("fp8_rowwise"), H100, None),
        (case("int8wo", variant="prune:0.5"), CPU, "not combined with int8wo"),
        (Case("llama:tiny", "train", 1, "fp32", "eager", "cpu", seq_len=32, variant="distill:nano"), CPU, None),
        (Case("llama:tiny", "infer", 1, "fp32", "eager", "cpu", seq_len=32, variant="distill:nano"), CPU,
         "distill:nano applies to train cases only (it trains a student against the teacher)"),
        (case(device="cuda", threads=2), H100, "threads applies to CPU cases only"),
        (case(threads=2), CPU, None),
    ],
)
def test_requires_reasons_per_device(c, dev, expected):
    got = backends.unsupported_reason(c, dev)
    if expected is None:
        assert got is None
    else:
        assert got is not None and expected in got, got


def test_absent_device_reason():
    assert backends.unsupported_reason(case(device="cuda"), backends.resolve_device("cuda", [CPU])) .startswith(
        "device cuda: no CUDA device visible")


def test_every_precision_declares_a_known_peak_and_dtype():
    assert precisions.names() == ("fp32", "tf32", "fp16", "bf16", "amp_fp16", "amp_bf16", "int8", "fp8", "int8wo",
                                  "int4wo", "fp8_rowwise")
    for name in precisions.names():
        p = precisions.get(name)
        assert p.peak_key in precisions.PEAK_KEYS and p.help
        assert isinstance(p.torch_dtype(), torch.dtype)
    assert precisions.get("amp_fp16").peak_key == "fp16" and precisions.get("int8").peak_key == "int8"
    # weight-only schemes multiply in bf16: that is the peak they are held to
    assert precisions.get("int8wo").peak_key == precisions.get("int4wo").peak_key == "bf16"
    assert precisions.get("fp8_rowwise").peak_key == "fp8"
    assert backends.names() == ("eager", "compile", "cudagraphs")
    with pytest.raises(KeyError, match="unknown precision 'fp64'"):
        precisions.get("fp64")


@pytest.mark.parametrize("spelling", ["prune:0.5", "prune:.5", "prune:0.50", "prune:5e-1", "prune:0.500000"])
def test_canonical_variant_spellings(spelling):
    assert variants.canonical(spelling) == "prune:0.5"


def test_canonical_variant_errors_list_what_is_allowed():
    assert variants.canonical("none") == "none" and variants.canonical("sparse24") == "sparse24"
    assert variants.names_help() == "none, prune:<sparsity in (0, 1)>, sparse24, distill:<student size>"
    with pytest.raises(ValueError) as e:
        variants.canonical("prun:0.5")
    assert str(e.value) == ("unknown variant 'prun:0.5' (did you mean 'prune:0.5'?); "
                            "allowed: none, prune:<sparsity in (0, 1)>, sparse24, distill:<student size>")
    for bad in ("prune:2", "prune:0", "prune:1", "prune:nan", "prune:x", "prune", "none:0.5", "sparse24:1", "",
                "distill", "distill:", "distill:a/b"):
        with pytest.raises(ValueError, match="allowed: none, prune:<sparsity in \\(0, 1\\)>, sparse24, distill"):
            variants.canonical(bad)
    # the suite loader stores the canonical spelling, so case ids compare
    s = parse_suite('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\nvariants=["prune:.50"]\n')
    assert [c.variant for c in s.cases] == ["prune:0.5"]


def test_true_fp32_turns_tf32_off_and_restores():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        with precisions.true_fp32():
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Sequential(nn.Linear(128, 32)))


def test_int8_through_torchao_on_cpu():
    pytest.importorskip("torchao")
    model, x = _mlp(), torch.randn(16, 64)
    with torch.inference_mode():
        ref = model(x)
    prep = backends.prepare(model, case("int8"), torch.device("cpu"), True)
    assert prep.changes == {"int8_layers": 2, "fp32_layers_left": 0}
    assert type(prep.model[0].weight).__name__ == "Int8Tensor"  # torchao's quantised weight
    assert prep.input_dtype == torch.float32
    with torch.inference_mode():
        out = prep.model(x)
    rel = ((out - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.05


def test_flops_of_an_int8_model_are_counted_or_refused_never_zero():
    pytest.importorskip("torchao")
    x = torch.randn(16, 64)
    expected = 2 * 16 * (64 * 128 + 128 * 32)
    prep = backends.prepare(_mlp(), case("int8"), torch.device("cpu"), True)
    run = lambda: prep.model(x)  # noqa: E731
    # torchao's int8 layers dispatch aten._int_mm, which hwbench gives the mm formula
    assert flops.count_checked(run, prep.model) == (expected, None)
    # a kernel without a formula: a reason naming the layer, not a short count
    saved = flops.EXTRA.pop(torch.ops.aten._int_mm)
    try:
        n, reason = flops.count_checked(run, prep.model)
    finally:
        flops.EXTRA[torch.ops.aten._int_mm] = saved
    assert n is None and "layer 0 (Int8Tensor)" in reason
    assert flops.count_checked(lambda: None, prep.model) == (None, "not counted: torch.utils.flop_counter saw no matmul, convolution or attention")


def test_fp32_model_count_checked_matches_count():
    model, x = _mlp(), torch.randn(4, 64)
    assert flops.count_checked(lambda: model(x), model) == (flops.count(lambda: model(x)), None)


def test_a_new_precision_is_one_registered_object():
    def channels_last(model, c):
        n = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        return model.to(memory_format=torch.channels_last), {"channels_last_convs": n}

    toy = precisions.register(precisions.Precision(
        "fp32_channels_last", "float32, NHWC activations and weights", "fp32",
        needs=precisions.Needs(kinds=("cpu", "cuda")), convert=channels_last,
    ))
    try:
        assert "fp32_channels_last" in precisions.names()
        # validates: the suite loader accepts it
        s = parse_suite('[suite]\nname="x"\n[[matrix]]\nmodels=["cnn:tiny"]\nprecisions=["fp32_channels_last"]\n')
        (c,) = s.cases
        # plans: a reason where it cannot run, none where it can
        assert backends.unsupported_reason(c, CPU) is None
        assert "fp32_channels_last needs a CPU or CUDA device (this device is mps)" == backends.unsupported_reason(c, MPS)
        # applies
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        prep = backends.prepare(model, c, torch.device("cpu"), True)
        assert prep.changes == {"channels_last_convs": 2}
        assert prep.model[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert prep.input_dtype == torch.float32 and toy.peak_key == "fp32"
        with pytest.raises(ValueError, match="already registered"):
            precisions.register(toy)
    finally:
        precisions.unregister("fp32_channels_last")
    assert "fp32_channels_last" not in precisions.names()


def test_peak_key_must_be_a_known_peak():
    with pytest.raises(ValueError, match="peak_key 'fp64' is not one of"):
        precisions.Precision("fp64", "float64", "fp64")


def test_int8_weight_only_through_torchao_on_cpu():
    pytest.importorskip("torchao")
    model, x = _mlp(), torch.randn(16, 64)
    with torch.inference_mode():
        ref = model(x)
    prep = backends.prepare(model, case("int8wo"), torch.device("cpu"), True)
    assert prep.changes == {"int8wo_layers": 2, "bf16_layers_left": 0}
    assert type(prep.model[0].weight).__name__ == "Int8Tensor"
    assert prep.input_dtype == torch.bfloat16 and prep.model[0].bias.dtype == torch.bfloat16
    with torch.inference_mode():
        out = prep.model(x.to(prep.input_dtype))
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.05
    # dequantised to a bf16 mm: counted by the counter's own formula
    assert flops.count_checked(lambda: prep.model(x.to(torch.bfloat16)), prep.model) == (2 * 16 * (64 * 128 + 128 * 32), None)


def test_tied_and_odd_shaped_layers_are_left_and_counted():
    pytest.importorskip("torchao")
    from hwbench import models

    fam, size = models.get("llama:tiny")
    torch.manual_seed(0)
    prep = backends.prepare(fam.build(fam.sizes[size]), Case("llama:tiny", "infer", 1, "int8wo", "eager", "cpu", seq_len=32),
                            torch.device("cpu"), fam.float_inputs)
    # 2 layers x (4 attention + 3 MLP) quantised; the LM head is tied to the embedding
    assert prep.changes == {"int8wo_layers": 14, "bf16_layers_left": 1}


def test_torch_and_torchao_versions_are_checked(monkeypatch):
    installed = {"torchao": "0.17.0", "torch": "2.4.1+cu121"}
    monkeypatch.setattr(precisions, "installed_version", lambda dist: installed.get(dist))
    monkeypatch.setattr(precisions.importlib.util, "find_spec", lambda name: object())  # "installed"
    assert backends.unsupported_reason(case("int8wo"), CPU) == (
        "int8wo needs torchao >= 0.18 (its version-2 quantised tensor layouts) (installed: 0.17.0)")
    installed["torchao"] = "0.18.1"
    assert backends.unsupported_reason(case("int8wo"), CPU) is None
    assert backends.unsupported_reason(case("fp8_rowwise"), H100) == "fp8_rowwise needs torch >= 2.5 (installed: 2.4.1+cu121)"
    assert backends.unsupported_reason(case("int4wo"), A100) == "int4wo needs torch >= 2.5 (installed: 2.4.1+cu121)"
    installed["torch"] = "2.6.0.dev20241001+cu124"
    assert backends.unsupported_reason(case("int4wo"), A100) is None
    # the device is checked before the versions: its reason is the one that matters
    assert "needs a CUDA GPU" in backends.unsupported_reason(case("int4wo"), CPU)


@pytest.mark.parametrize("text,expected", [("2.13.0+cpu", (2, 13, 0)), ("0.18", (0, 18)), ("2.6.0.dev20241001", (2, 6, 0)),
                                           ("0.18.0rc1", (0, 18, 0))])
def test_version_parsing(text, expected):
    assert precisions._version_tuple(text) == expected


def test_int4_tinygemm_matmul_has_a_flop_formula():
    # aten._weight_int4pack_mm (torchao int4 weight-only on CUDA), shapes only (fake
    # tensors): 2 m n k, n from the output
    from torch._subclasses.fake_tensor import FakeTensorMode

    m, k, n, group = 8, 1024, 256, 128
    with FakeTensorMode():
        a = torch.empty(m, k, dtype=torch.bfloat16)
        packed = torch.empty(n // 8, k // (8 * 16), 32, 4, dtype=torch.int32)
        scales = torch.empty(k // group, n, 2, dtype=torch.bfloat16)
        try:
            n_flops = flops.count(lambda: torch.ops.aten._weight_int4pack_mm(a, packed, group, scales))
        except (RuntimeError, NotImplementedError, AttributeError) as e:  # another torch's meta kernel
            pytest.skip(f"no shape function for _weight_int4pack_mm in this torch: {e}")
    assert n_flops == 2 * m * n * k
