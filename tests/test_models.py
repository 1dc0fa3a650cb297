"""Reference models: parameter counts against the published architectures, analytic
FLOPs against torch's FLOP counter, the decoder's KV cache, the registry's torch-free
metadata and the declarations a family is checked against."""

import importlib
import inspect
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwbench import models
from hwbench.models import GenerativeModel, ModelFamily, Shape
from hwbench.models.base import NETS_ENTRIES

# Published parameter counts.
PUBLISHED = {
    "cnn:resnet50": 25_557_032,  # torchvision resnet50
    "cnn:resnet152": 60_192_808,  # torchvision resnet152
    "encoder:base": 109_482_240 + 768 * 2 + 2,  # bert-base-uncased + 2-way head
    "encoder:large": 335_141_888 + 1024 * 2 + 2,  # bert-large-uncased + 2-way head
    "decoder:small": 124_439_808,  # gpt2
    "decoder:medium": 354_823_168,  # gpt2-medium
    "decoder:xl": 1_557_611_200,  # gpt2-xl
}


@pytest.mark.parametrize("name,count", PUBLISHED.items())
def test_analytic_param_count_matches_published(name, count):
    fam, size = models.get(name)
    assert fam.param_count(fam.sizes[size]) == count


@pytest.mark.parametrize("name", models.model_names())
def test_built_model_has_the_analytic_param_count(name):
    fam, size = models.get(name)
    with torch.device("meta"):
        m = fam.build(fam.sizes[size])
    assert sum(p.numel() for p in m.parameters()) == fam.param_count(fam.sizes[size])


def test_at_least_one_size_has_a_billion_parameters():
    counts = [models.get(n)[0].param_count(models.get(n)[0].sizes[models.get(n)[1]]) for n in models.model_names()]
    assert max(counts) >= 1e9


def _counted_flops(name, mode, batch=2):
    fam, size = models.get(name)
    cfg = fam.sizes[size]
    shape = fam.default_shape(cfg)
    with torch.device("meta"):
        m = fam.build(cfg)
    x, y = fam.make_batch(cfg, batch, shape, "meta", torch.float32)
    with FlopCounterMode(display=False) as fc:
        out = m(x)
        if mode == "train":
            fam.loss(out, y).backward()
    return fc.get_total_flops() / batch, fam.flops_per_sample(size, mode, shape)


@pytest.mark.parametrize("name", ["mlp:base", "cnn:resnet50", "encoder:base", "decoder:small", "mlp:tiny", "cnn:tiny", "encoder:tiny", "decoder:tiny"])
@pytest.mark.parametrize("mode", ["infer", "train"])
def test_analytic_flops_agree_with_flop_counter(name, mode):
    counted, analytic = _counted_flops(name, mode)
    assert analytic == pytest.approx(counted, rel=0.02), (counted, analytic)


def test_decoder_kv_cache_matches_full_forward():
    fam, size = models.get("decoder:tiny")
    torch.manual_seed(0)
    m = fam.build(fam.sizes[size]).eval()
    ids = torch.randint(0, 1000, (2, 12))
    with torch.inference_mode():
        full = m(ids)
        logits, cache = m(ids[:, :8], cache=[])
        steps = [logits]
        for t in range(8, 12):
            logits, cache = m(ids[:, t : t + 1], cache=cache)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mlp:tiny", "cnn:tiny", "encoder:tiny", "decoder:tiny"])
def test_tiny_models_train_one_step(name):
    fam, size = models.get(name)
    cfg = fam.sizes[size]
    torch.manual_seed(0)
    m = fam.build(cfg)
    x, y = fam.make_batch(cfg, 2, fam.default_shape(cfg), "cpu", torch.float32)
    loss = fam.loss(m(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_weights_are_deterministic_under_the_seed():
    fam, size = models.get("encoder:tiny")
    torch.manual_seed(3)
    a = fam.build(fam.sizes[size]).state_dict()
    torch.manual_seed(3)
    b = fam.build(fam.sizes[size]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_registry_and_metadata_answer_without_torch():
    # A subprocess: this test process imported torch long ago.
    code = """
import sys
import hwbench.models as m
names = m.model_names()
for n in names:
    fam, size = m.get(n)
    cfg = fam.sizes[size]
    shape = fam.default_shape(cfg)
    fam.param_count(cfg), fam.flops_per_sample(size, "train", shape), fam.modes, fam.shape_kind
    if fam.max_seq_len is not None:
        fam.max_seq_len(cfg)
    if fam.flops_generate is not None:
        fam.flops_generate(cfg, 16, 8)
    assert all(callable(f) for f in (fam.build, fam.make_batch, fam.loss))
assert "torch" not in sys.modules, sorted(k for k in sys.modules if k.startswith("torch"))
print(len(names))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(models.model_names())


def test_sequence_and_generation_capabilities_are_declared():
    dec, enc = models.REGISTRY["decoder"], models.REGISTRY["encoder"]
    assert dec.max_seq_len(dec.sizes["small"]) == 1024
    assert enc.max_seq_len(enc.sizes["base"]) == 512
    for name in ("mlp", "cnn"):
        assert models.REGISTRY[name].max_seq_len is None
    generative = {n for n, f in models.REGISTRY.items() if "generate" in f.modes}
    assert generative == {n for n, f in models.REGISTRY.items() if f.flops_generate is not None} == {"decoder", "llama", "moe"}


def test_decoder_is_a_generative_model():
    fam, size = models.get("decoder:tiny")
    with torch.device("meta"):
        m = fam.build(fam.sizes[size])
    assert isinstance(m, GenerativeModel)
    params = inspect.signature(m.forward).parameters
    assert list(params) == ["ids", "cache", "last_only", "slots"]  # slots: the serving path (nets/slots.py)
    assert params["cache"].default is None and params["last_only"].default is False
    assert params["slots"].default is None


def test_decoder_generate_flops_count_prefill_then_decode():
    fam, size = models.get("decoder:tiny")
    cfg = fam.sizes[size]
    # one generated token is the prefill alone, with the LM head on the last position
    prefill = fam.flops_generate(cfg, 16, 1)
    full = fam.flops_forward(cfg, Shape(seq_len=16))
    assert prefill == pytest.approx(full - 2.0 * 15 * cfg["d"] * cfg["vocab"])
    assert fam.flops_generate(cfg, 16, 8) > prefill


@pytest.mark.parametrize(
    "change,message",
    [
        ({"modes": ("infer", "generate")}, "flops_generate"),
        ({"flops_generate": lambda c, p, n: 1.0}, "flops_generate"),
        ({"modes": ("infer", "sing")}, "subset"),
        ({"max_seq_len": None}, "max_seq_len"),
        ({"shape_kind": "pixels"}, "shape_kind"),
    ],
)
def test_contradictory_family_declarations_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        replace(models.REGISTRY["encoder"], **change)


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_a_family_forwards_to_its_nets_module(name):
    fam = models.REGISTRY[name]
    nets = importlib.import_module(f"hwbench.models.nets.{fam.nets}")
    assert all(callable(getattr(nets, entry)) for entry in NETS_ENTRIES)
    cfg = next(iter(fam.sizes.values()))
    with torch.device("meta"):
        assert type(fam.build(cfg)) is type(nets.build(cfg))


def test_a_family_needs_its_torch_code():
    with pytest.raises(ValueError, match="no module hwbench.models.nets.decodr"):
        replace(models.REGISTRY["decoder"], nets="decodr", build=None, make_batch=None, loss=None)
    with pytest.raises(ValueError, match="build is missing"):
        replace(models.REGISTRY["decoder"], nets=None, build=None)


def test_generate_needs_sequences():
    with pytest.raises(ValueError, match="seq_len"):
        replace(models.REGISTRY["mlp"], modes=("infer", "generate"), flops_generate=lambda c, p, n: 1.0)


# A toy family, defined as a new family module would be: metadata, analytic counts, torch
# code. Registering it is the one line a new family adds to hwbench/models/__init__.py.
def _linear_dims(cfg):
    return cfg["features"], cfg["classes"]


def _linear_build(cfg):
    return nn.Linear(*_linear_dims(cfg))


def _linear_batch(cfg, batch, shape, device, dtype):
    x = torch.randn(batch, cfg["features"], device=device, dtype=dtype)
    return x, torch.randint(0, cfg["classes"], (batch,), device=device)


LINEAR = ModelFamily(
    name="linear",
    description="one Linear layer (test only)",
    sizes={"tiny": {"features": 32, "classes": 4}},
    build=_linear_build,
    make_batch=_linear_batch,
    loss=lambda out, y: nn.functional.cross_entropy(out, y),
    flops_forward=lambda cfg, shape: 2.0 * cfg["features"] * cfg["classes"],
    first_layer_flops=lambda cfg, shape: 2.0 * cfg["features"] * cfg["classes"],
    param_count=lambda cfg: cfg["features"] * cfg["classes"] + cfg["classes"],
    default_shape=lambda cfg: Shape(),
    shape_kind=None,
)


def test_a_new_family_is_one_registry_entry(monkeypatch):
    with monkeypatch.context() as mp:
        mp.setitem(models.REGISTRY, LINEAR.name, LINEAR)
        assert "linear:tiny" in models.model_names()
        fam, size = models.get("linear:tiny")
        cfg = fam.sizes[size]
        torch.manual_seed(0)
        m = fam.build(cfg)
        x, y = fam.make_batch(cfg, 3, fam.default_shape(cfg), "cpu", torch.float32)
        assert x.shape == (3, 32) and y.shape == (3,)
        assert sum(p.numel() for p in m.parameters()) == fam.param_count(cfg) == 32 * 4 + 4
        with FlopCounterMode(display=False) as fc:
            fam.loss(m(x), y).backward()
        # the only layer's input needs no gradient: backward is the weight gradient only
        assert fam.flops_per_sample(size, "train", Shape()) == pytest.approx(fc.get_total_flops() / 3)
    assert "linear:tiny" not in models.model_names()
    with pytest.raises(KeyError):
        models.get("linear:tiny")
