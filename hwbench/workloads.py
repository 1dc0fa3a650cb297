"""Workloads: what one timed iteration does.

* ``infer``: a forward pass under ``torch.inference_mode``.
* ``train``: forward, loss, backward, optimizer step (AdamW), gradients set to None.
* ``generate`` (decoder only): see :func:`generate` -- prefill + decode with a KV cache.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .backends import Prepared


def make_step(mode: str, prep: Prepared, loss_fn, inputs: Any, targets: Any) -> Callable[[], object]:
    model = prep.model
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
