"""The Llama-style, mixture-of-experts and ViT families: parameter counts against the
published architectures (analytic and built on the meta device), analytic FLOPs
against torch's FLOP counter, generation with grouped-query attention against a full
forward pass, the router's counts, and the torch-free catalogue."""

import math
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwbench import flops, models
from hwbench.models import GenerativeModel, RoutedModel, Shape

PUBLISHED = {
    "llama:1b": 1_235_814_400,  # meta-llama/Llama-3.2-1B (tied embeddings)
    "llama:8b": 8_030_261_248,  # meta-llama/Meta-Llama-3-8B
    "moe:8x7b": 46_702_792_704,  # mistralai/Mixtral-8x7B-v0.1, every expert
    "vit:b16": 86_567_656,  # timm vit_base_patch16_224
    "vit:s16": 22_050_664,  # timm vit_small_patch16_224
}
NEW = ["llama:nano", "llama:tiny", "llama:1b", "llama:8b", "moe:tiny", "moe:8x7b", "vit:tiny", "vit:s16", "vit:b16"]


def _cfg(name):
    fam, size = models.get(name)
    return fam, size, fam.sizes[size]


@pytest.mark.parametrize("name,count", PUBLISHED.items())
def test_param_counts_match_published(name, count):
    fam, _, cfg = _cfg(name)
    assert fam.param_count(cfg) == count
    with torch.device("meta"):  # no memory, even for the 47 B one
        m = fam.build(cfg)
    assert sum(p.numel() for p in m.parameters()) == count


def test_mixtral_active_parameters():
    fam, _, cfg = _cfg("moe:8x7b")
    # 2 of 8 experts per layer: 46.7 B in all, 12.9 B per token (Mixtral's "12.9 B active")
    assert fam.active_params(cfg) == 12_879_925_248
    expert = 3 * 4096 * 14336
    assert fam.param_count(cfg) - fam.active_params(cfg) == 32 * 6 * expert
    llama, _, lcfg = _cfg("llama:8b")
    assert llama.active_params(lcfg) == llama.param_count(lcfg)  # dense: every parameter


def test_llama_configs_are_the_published_shapes():
    _, _, c1 = _cfg("llama:1b")
    _, _, c8 = _cfg("llama:8b")
    assert (c1["d"], c1["layers"], c1["heads"], c1["kv_heads"], c1["ffn"], c1["vocab"], c1["tied"]) == (
        2048, 16, 32, 8, 8192, 128256, True)
    assert (c8["d"], c8["layers"], c8["heads"], c8["kv_heads"], c8["ffn"], c8["vocab"], c8["tied"]) == (
        4096, 32, 32, 8, 14336, 128256, False)
    with torch.device("meta"):
        m = models.get("llama:1b")[0].build(c1)
    assert m.lm_head.weight is m.tok.weight
    assert m.layers[0].attn.k.out_features == 8 * 64  # 8 KV heads of 64


def _counted(name, mode, device="meta", batch=2, shape=None):
    fam, size, cfg = _cfg(name)
    shape = shape or fam.default_shape(cfg)
    torch.manual_seed(0)
    if device == "meta":
        with torch.device("meta"):
            m = fam.build(cfg)
    else:
        m = fam.build(cfg)
    x, y = fam.make_batch(cfg, batch, shape, device, torch.float32)
    with FlopCounterMode(display=False, custom_mapping=flops.EXTRA) as fc:
        out = m(x)
        if mode == "train":
            fam.loss(out, y).backward()
    return fc.get_total_flops() / batch, fam.flops_per_sample(size, mode, shape)


@pytest.mark.parametrize("name", ["llama:tiny", "llama:1b", "llama:8b", "vit:tiny", "vit:b16"])
@pytest.mark.parametrize("mode", ["infer", "train"])
def test_analytic_flops_agree_with_flop_counter_on_meta(name, mode):
    counted, analytic = _counted(name, mode)
    assert analytic == pytest.approx(counted, rel=0.02), (counted, analytic)


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_moe_flops_are_the_active_parameters(mode):
    # routing depends on values, so the MoE runs on real (CPU) tensors; the counter
    # sees each expert's matmuls on the tokens routed to it
    counted, analytic = _counted("moe:tiny", mode, device="cpu")
    assert analytic == pytest.approx(counted, rel=0.02), (counted, analytic)
    fam, size, cfg = _cfg("moe:tiny")
    dense_equivalent = models.get("llama:tiny")[0].flops_forward({**cfg, "tied": False}, fam.default_shape(cfg))
    assert fam.flops_per_sample(size, "infer", fam.default_shape(cfg)) > dense_equivalent  # 2 experts > 1 MLP


def test_vit_other_image_sizes_interpolate_positions():
    counted, analytic = _counted("vit:tiny", "infer", shape=Shape(image_size=96))
    assert analytic == pytest.approx(counted, rel=0.02)
    fam, _, cfg = _cfg("vit:tiny")
    torch.manual_seed(0)
    m = fam.build(cfg).eval()
    x, _ = fam.make_batch(cfg, 2, Shape(image_size=96), "cpu", torch.float32)
    assert m(x).shape == (2, cfg["classes"])


@pytest.mark.parametrize("name", ["llama:tiny", "moe:tiny"])
def test_generation_with_gqa_kv_cache_matches_full_forward(name):
    fam, _, cfg = _cfg(name)
    assert cfg["kv_heads"] < cfg["heads"]  # grouped-query attention
    torch.manual_seed(0)
    m = fam.build(cfg).eval()
    assert isinstance(m, GenerativeModel)
    ids = torch.randint(0, cfg["vocab"], (2, 12))
    with torch.inference_mode():
        full = m(ids)
        logits, cache = m(ids[:, :8], cache=[])
        steps = [logits]
        for t in range(8, 12):
            logits, cache = m(ids[:, t : t + 1], cache=cache)
            steps.append(logits)
        last, _ = m(ids[:, :8], cache=[], last_only=True)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(last, full[:, 7:8], rtol=1e-4, atol=1e-4)
    k, v = cache[0]
    assert k.shape == v.shape == (2, cfg["kv_heads"], 12, cfg["d"] // cfg["heads"])  # the cache holds KV heads only


def test_rope_llama3_scaling_keeps_high_and_divides_low_frequencies():
    from hwbench.models.nets.llama import inv_freq

    _, _, cfg = _cfg("llama:1b")
    plain = inv_freq({**cfg, "rope_scaling": None}, "cpu")
    scaled = inv_freq(cfg, "cpu")
    wavelen = 2 * math.pi / plain
    factor, low, high, ctx = cfg["rope_scaling"]
    assert torch.equal(scaled[wavelen < ctx / high], plain[wavelen < ctx / high])
    torch.testing.assert_close(scaled[wavelen > ctx / low], plain[wavelen > ctx / low] / factor)
    mid = (wavelen >= ctx / high) & (wavelen <= ctx / low)
    assert mid.any() and bool(((scaled[mid] < plain[mid]) & (scaled[mid] > plain[mid] / factor)).all())


def test_moe_router_counts_every_token_top_k_times():
    fam, _, cfg = _cfg("moe:tiny")
    torch.manual_seed(0)
    m = fam.build(cfg)
    assert isinstance(m, RoutedModel)
    assert not isinstance(models.get("llama:tiny")[0].build(models.get("llama:tiny")[0].sizes["tiny"]), RoutedModel)
    ids, _ = fam.make_batch(cfg, 2, Shape(seq_len=16), "cpu", torch.float32)
    with torch.inference_mode():
        m(ids)
        m(ids)
    counts = m.router_counts()
    assert len(counts) == cfg["layers"] and all(len(c) == cfg["experts"] for c in counts)
    assert all(sum(c) == 2 * (2 * 16 * cfg["top_k"]) for c in counts)  # 2 calls x tokens x top-k
    m.reset_router_counts()
    assert m.router_counts() == [[0] * cfg["experts"]] * cfg["layers"]


@pytest.mark.parametrize("name", ["llama:tiny", "moe:tiny", "vit:tiny", "llama:nano"])
def test_tiny_models_train_one_step(name):
    fam, _, cfg = _cfg(name)
    torch.manual_seed(0)
    m = fam.build(cfg)
    x, y = fam.make_batch(cfg, 2, fam.default_shape(cfg), "cpu", torch.float32)
    loss = fam.loss(m(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    if name.startswith("moe"):  # an expert no token chose this step has no gradient
        assert sum(g is not None for g in grads) > len(grads) // 2
    else:
        assert all(g is not None for g in grads)


def test_generate_flops_prefill_then_decode():
    for name in ("llama:tiny", "moe:tiny"):
        fam, size, cfg = _cfg(name)
        prefill = fam.flops_generate(cfg, 16, 1)
        full = fam.flops_forward(cfg, Shape(seq_len=16))
        assert prefill == pytest.approx(full - 2.0 * 15 * cfg["d"] * cfg["vocab"])
        assert fam.flops_generate(cfg, 16, 8) > prefill


def test_catalogue_is_torch_free_and_complete():
    code = """
import json, sys
import hwbench.models as m
rows = m.catalogue()
assert "torch" not in sys.modules
print(json.dumps(rows))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    import json

    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert list(rows) == models.model_names()
    for name, count in PUBLISHED.items():
        assert rows[name]["params"] == count
    assert rows["moe:8x7b"]["active_params"] == 12_879_925_248
    assert rows["llama:8b"]["active_params"] == rows["llama:8b"]["params"]
    assert rows["llama:8b"]["modes"] == ["infer", "train", "generate"]
    assert rows["vit:b16"]["modes"] == ["infer", "train"]
    assert rows["llama:8b"]["default_shape"] == {"seq_len": 512} and rows["llama:8b"]["max_seq_len"] == 8192
    assert rows["vit:b16"]["default_shape"] == {"image_size": 224} and rows["vit:b16"]["max_seq_len"] is None
    assert rows["mlp:tiny"]["default_shape"] == {}
    assert set(rows["llama:1b"]) == {"name", "family", "size", "params", "active_params", "modes", "default_shape",
                                     "max_seq_len", "description"}


@pytest.mark.parametrize("name", [n for n in NEW if n != "moe:8x7b"])  # routing needs real tensors
def test_every_new_model_declares_its_output_width(name):
    fam, _, cfg = _cfg(name)
    # routing depends on values: the MoE runs on real tensors (its tiny size only)
    device = "cpu" if name == "moe:tiny" else "meta"
    with torch.device(device):
        m = fam.build(cfg)
    x, _ = fam.make_batch(cfg, 1, fam.default_shape(cfg), device, torch.float32)
    assert m(x).shape[-1] == fam.output_dim(cfg)


RUN_BODY = """
[[matrix]]
models = ["llama:tiny", "moe:tiny", "vit:tiny"]
modes = ["infer", "train"]
batch_sizes = [2]
devices = ["cpu"]

[[matrix]]
models = ["llama:tiny"]
modes = ["generate"]
batch_sizes = [2]
output_lens = [4]
precisions = ["fp32", "int8wo", "int8"]
devices = ["cpu"]
"""


def test_new_tiny_models_run_ok_on_cpu_with_router_counts_and_deviation(tmp_path):
    from conftest import run_suite

    _, out = run_suite(tmp_path, RUN_BODY)
    cases = {c.case_id: c for c in out.record.cases}
    assert all(c.status == "ok" for c in cases.values()), [(c.case_id, c.reason) for c in cases.values()]
    assert len(cases) == 9
    fam, _, cfg = _cfg("moe:tiny")
    for mode in ("infer", "train"):
        f = cases[f"moe:tiny/{mode}/bs2/seq32/fp32/eager/cpu"].facts
        assert f.active_params == fam.active_params(cfg) < f.params
        counts = f.router_tokens_per_expert
        n_iters = sum(len(r) for r in cases[f"moe:tiny/{mode}/bs2/seq32/fp32/eager/cpu"].measurement.raw_times_s)
        # summed over the timed iterations: tokens x top-k per layer per iteration
        assert len(counts) == cfg["layers"] and all(sum(c) == n_iters * 2 * 32 * cfg["top_k"] for c in counts)
    assert cases["llama:tiny/infer/bs2/seq32/fp32/eager/cpu"].facts.router_tokens_per_expert is None
    for p in ("int8wo", "int8"):
        f = cases[f"llama:tiny/generate/bs2/seq32+gen4/{p}/eager/cpu"].facts
        assert 0 < f.accuracy.rel_l2_error < 0.05 and f.changes[f"{p}_layers"] == 14
