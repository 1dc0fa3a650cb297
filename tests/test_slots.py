"""The slot KV cache (hwbench.models.nets.slots): a batched decode of requests of
different lengths gives, for every generative family, the logits each request gets
when it runs alone through the GenerativeModel cache path (fp32, tiny configs), also
after a request leaves and a new one takes its slot."""

import pytest
import torch

from hwbench import models
from hwbench.models.nets.slots import SlotCache, slot_forward

# every family that declares the generate mode (decoder, llama, moe), at its tiny size
GENERATIVE = sorted(f"{n}:tiny" for n, f in models.REGISTRY.items() if "generate" in f.modes)
STEPS = 6


def test_every_generative_family_is_covered():
    assert GENERATIVE == ["decoder:tiny", "llama:tiny", "moe:tiny"]


def _model(name):
    fam, size = models.get(name)
    cfg = fam.sizes[size]
    torch.manual_seed(0)
    return fam.build(cfg).eval(), cfg


def _alone(m, prompt, steps):
    """Logits of the prompt's last position, then of each greedy decode step, through
    the list-of-(k, v) cache: the reference."""
    with torch.inference_mode():
        logits, cache = m(prompt, cache=[], last_only=True)
        out = [logits]
        for _ in range(steps):
            logits, cache = m(logits[:, -1].argmax(-1, keepdim=True), cache=cache, last_only=True)
            out.append(logits)
    return out


def _close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def _prompts(cfg, lens, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, cfg["vocab"], (1, n), generator=g) for n in lens]


@pytest.mark.parametrize("rows", [[2, 0, 3], [0, 1, 2]], ids=["scattered-slots", "consecutive-slots"])
@pytest.mark.parametrize("name", GENERATIVE)
def test_batched_decode_matches_each_request_alone(name, rows):
    m, cfg = _model(name)
    prompts = _prompts(cfg, [5, 9, 3])
    want = [_alone(m, p, STEPS) for p in prompts]
    cache = SlotCache(slots=4, max_len=32)
    with torch.inference_mode():
        firsts = [slot_forward(m, cache, p, [r]) for p, r in zip(prompts, rows)]  # prefill, batch 1 each
        for f, w in zip(firsts, want):
            _close(f, w[0])
        toks = torch.cat([f[:, -1].argmax(-1, keepdim=True) for f in firsts])
        for step in range(1, STEPS + 1):
            logits = slot_forward(m, cache, toks, rows)  # one forward for the three requests
            assert logits.shape == (3, 1, cfg["vocab"])
            for i in range(3):
                _close(logits[i:i + 1], want[i][step])
            toks = logits[:, -1].argmax(-1, keepdim=True)
    assert [cache.lengths[r] for r in rows] == [5 + STEPS, 9 + STEPS, 3 + STEPS]


@pytest.mark.parametrize("name", GENERATIVE)
def test_a_new_request_in_a_freed_slot_matches_it_alone(name):
    """The longest request leaves after 3 steps; a shorter new one takes its slot (the
    old keys beyond its length stay in the slot, masked) and joins the others."""
    m, cfg = _model(name)
    a, b, new = _prompts(cfg, [12, 4, 3], seed=2)
    want_a, want_b = _alone(m, a, 3), _alone(m, b, 3 + STEPS)
    want_new = _alone(m, new, STEPS)
    cache = SlotCache(slots=2, max_len=24)
    with torch.inference_mode():
        toks = {}
        for slot, p in ((0, a), (1, b)):
            toks[slot] = slot_forward(m, cache, p, [slot])[:, -1].argmax(-1, keepdim=True)
        for step in range(1, 4):
            logits = slot_forward(m, cache, torch.cat([toks[0], toks[1]]), [0, 1])
            _close(logits[0:1], want_a[step])
            _close(logits[1:2], want_b[step])
            toks = {0: logits[0:1, -1].argmax(-1, keepdim=True), 1: logits[1:2, -1].argmax(-1, keepdim=True)}
        cache.free(0)  # a is complete; new takes slot 0
        first = slot_forward(m, cache, new, [0])
        _close(first, want_new[0])
        toks[0] = first[:, -1].argmax(-1, keepdim=True)
        for step in range(1, STEPS + 1):
            logits = slot_forward(m, cache, torch.cat([toks[0], toks[1]]), [0, 1])
            _close(logits[0:1], want_new[step])
            _close(logits[1:2], want_b[3 + step])
            toks = {0: logits[0:1, -1].argmax(-1, keepdim=True), 1: logits[1:2, -1].argmax(-1, keepdim=True)}
    assert cache.lengths == [3 + STEPS, 4 + 3 + STEPS]


@pytest.mark.parametrize("name", GENERATIVE)
def test_prompts_of_one_length_prefill_together(name):
    m, cfg = _model(name)
    prompts = _prompts(cfg, [6, 6], seed=3)
    cache = SlotCache(slots=3, max_len=8)
    with torch.inference_mode():
        logits = slot_forward(m, cache, torch.cat(prompts), [1, 2])
    for i, p in enumerate(prompts):
        _close(logits[i:i + 1], _alone(m, p, 0)[0])


def test_the_cache_is_allocated_once_with_the_keys_dtype_and_its_size_counted():
    m, cfg = _model("llama:tiny")
    cache = SlotCache(slots=3, max_len=10)
    assert cache.nbytes() == 0
    with torch.inference_mode():
        slot_forward(m, cache, _prompts(cfg, [4])[0], [1])
    hd = cfg["d"] // cfg["heads"]
    assert len(cache.k) == len(cache.v) == cfg["layers"]
    assert cache.k[0].shape == (3, cfg["kv_heads"], 10, hd) and cache.k[0].dtype == torch.float32
    assert cache.nbytes() == 2 * cfg["layers"] * 3 * cfg["kv_heads"] * 10 * hd * 4


@pytest.mark.parametrize("rows,new,why", [([0, 0], 1, "distinct"), ([3], 1, "distinct slots in 0..2"),
                                          ([], 1, "distinct"), ([0], 11, "holds 10 positions")])
def test_bad_rows_and_overflow_are_refused(rows, new, why):
    with pytest.raises(ValueError, match=why):
        SlotCache(slots=3, max_len=10).step(rows, new, "cpu")
