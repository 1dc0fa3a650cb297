"""Workloads: what one timed iteration does.

* ``infer``: a forward pass under ``torch.inference_mode``.
* ``train``: forward, loss, backward, optimizer step (AdamW), gradients set to None.
* ``generate`` (decoder only): prefill the prompt, then decode ``gen_tokens - 1`` more
  tokens one at a time with the KV cache, greedy (argmax). One iteration = one whole
  generation for the batch; the time to the first token is recorded per iteration.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from .backends import Prepared


def make_step(
    mode: str, prep: Prepared, loss_fn, inputs: Any, targets: Any, *, gen_tokens: int | None = None,
    sync: Callable[[], None] = lambda: None, ttft_s: list[float] | None = None,
) -> Callable[[], object]:
    """One timed iteration of ``mode``. For ``generate``, each call appends its time to
    first token (s, device synchronised) to ``ttft_s``."""
    model = prep.model
    if mode == "generate":
        model.eval()
        n = gen_tokens or 1
        ttft = ttft_s if ttft_s is not None else []
        clock = time.perf_counter

        def generate():
            with torch.inference_mode(), prep.autocast():
                t0 = clock()
                logits, cache = model(inputs, cache=[], last_only=True)
                tok = logits[:, -1].argmax(-1, keepdim=True)
                sync()
                ttft.append(clock() - t0)
                for _ in range(n - 1):
                    logits, cache = model(tok, cache=cache, last_only=True)
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                return tok

        return generate
    if mode == "infer":
        model.eval()

        def infer():
            with torch.inference_mode(), prep.autocast():
                return model(inputs)

        return infer
    if mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = prep.scaler

        def train():
            with prep.autocast():
                loss = loss_fn(model(inputs), targets)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        return train
    raise ValueError(f"unknown mode {mode!r}")
