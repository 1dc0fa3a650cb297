"""Workloads: the generate step's clock readings (TTFT and decode time) are each taken
after a device synchronisation, from one clock, one pair per iteration."""

import contextlib
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hwbench import models, workloads
from hwbench.models import GenerativeModel


def _prep(model: nn.Module):
    """What a step reads of backends.Prepared: fp32 eager, no autocast, no scaler."""
    return SimpleNamespace(model=model, input_dtype=torch.float32, autocast=contextlib.nullcontext, scaler=None)


class RecordingLM(nn.Module):
    """A GenerativeModel that logs its prefill and decode calls into ``log``."""

    def __init__(self, log: list[str], vocab: int = 5):
        super().__init__()
        self.log, self.vocab = log, vocab
        self.lin = nn.Linear(1, 1)  # so .eval() / .parameters() behave as for a real model

    def forward(self, ids, cache=None, last_only=False):
        self.log.append("decode" if cache else "prefill")
        logits = torch.zeros(ids.shape[0], 1 if last_only else ids.shape[1], self.vocab)
        new_cache = list(cache or []) + [(ids, ids)]
        return logits if cache is None else (logits, new_cache)


def test_every_clock_reading_follows_a_sync(monkeypatch):
    log: list[str] = []
    ticks = iter(range(100))

    def clock() -> float:
        log.append("clock")
        return float(next(ticks)) * 0.5

    monkeypatch.setattr(workloads, "time", SimpleNamespace(perf_counter=clock))
    model = RecordingLM(log)
    assert isinstance(model, GenerativeModel)
    gen_times: list[tuple[float, float]] = []
    step = workloads.make_step(
        "generate", _prep(model), None, torch.zeros(2, 3, dtype=torch.long), None,
        gen_tokens=4, sync=lambda: log.append("sync"), gen_times=gen_times,
    )
    for _ in range(2):
        step()
    one = ["sync", "clock", "prefill", "sync", "clock", "decode", "decode", "decode", "sync", "clock"]
    assert log == one * 2
    # clock readings 0, 1, 2 then 3, 4, 5 (x 0.5 s): ttft and decode both span one tick
    assert gen_times == [(0.5, 0.5), (0.5, 0.5)]


def test_real_decoder_records_one_positive_pair_per_call():
    fam, size = models.get("decoder:tiny")
    cfg = fam.sizes[size]
    torch.manual_seed(0)
    model = fam.build(cfg)
    ids, _ = fam.make_batch(cfg, 2, models.Shape(seq_len=16), "cpu", torch.float32)
    syncs: list[int] = []
    gen_times: list[tuple[float, float]] = []
    step = workloads.make_step("generate", _prep(model), fam.loss, ids, None, gen_tokens=4,
                               sync=lambda: syncs.append(1), gen_times=gen_times)
    for _ in range(3):
        tok = step()
    assert tok.shape == (2, 1)
    assert len(gen_times) == 3 and len(syncs) == 9
    assert all(ttft > 0 and decode > 0 for ttft, decode in gen_times)


def test_one_generated_token_is_prefill_only_and_times_are_optional():
    fam, size = models.get("decoder:tiny")
    cfg = fam.sizes[size]
    model = fam.build(cfg)
    ids, _ = fam.make_batch(cfg, 1, models.Shape(seq_len=8), "cpu", torch.float32)
    gen_times: list[tuple[float, float]] = []
    workloads.make_step("generate", _prep(model), fam.loss, ids, None, gen_tokens=1, gen_times=gen_times)()
    (ttft, decode), = gen_times
    assert ttft > 0 and 0 <= decode < ttft
    # without gen_times (FLOP counting) the step runs and keeps nothing
    assert workloads.make_step("generate", _prep(model), fam.loss, ids, None, gen_tokens=2)().shape == (1, 1)


def test_the_old_ttft_parameter_is_gone():
    with pytest.raises(TypeError):
        workloads.make_step("generate", _prep(nn.Linear(1, 1)), None, None, None, ttft_s=[])


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        workloads.make_step("sing", _prep(nn.Linear(1, 1)), None, None, None)
