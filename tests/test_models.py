"""Reference models: parameter counts against the published architectures, analytic
FLOPs against torch's FLOP counter, and the decoder's KV cache."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwbench import models

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
