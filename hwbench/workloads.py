"""Workloads: what one timed iteration does.

* ``infer``: a forward pass under ``torch.inference_mode``.
* ``train``: forward, loss, backward, optimizer step (AdamW), gradients set to None.
* ``generate`` (families declaring it; the model is a
  :class:`~hwbench.models.GenerativeModel`): prefill the prompt, then decode
  ``gen_tokens - 1`` more tokens one at a time with the KV cache, greedy (argmax). One
  iteration = one whole generation for the batch; its time to first token and decode
  time are recorded per iteration.
* ``distill`` (:func:`make_distill_step`, the ``distill:<size>`` variant of a ``train``
  case): the teacher's forward under ``torch.inference_mode``, then the student's
  forward, the distillation loss mixed with the task loss, backward and AdamW step.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, cast

import torch
from torch.nn import functional as F

from .models import GenerativeModel

if TYPE_CHECKING:
    # annotation only: the step needs .model, .autocast and .scaler, not the precision
    # and backend machinery (nor the suite loader it imports)
    from .backends import Prepared


def backward_and_step(loss, opt, scaler=None):
    """The end of every training step: backward, optimizer step (through the grad scaler
    for fp16 autocast), gradients set to None. Returns ``loss``."""
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def make_step(
    mode: str,
    prep: Prepared,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    inputs: Any,
    targets: Any,
    *,
    gen_tokens: int | None = None,
    sync: Callable[[], None] = lambda: None,
    gen_times: list[tuple[float, float]] | None = None,
) -> Callable[[], object]:
    """One timed iteration of ``mode``, as a zero-argument callable.

    ``generate``: ``gen_tokens`` tokens per sequence (default 1). ``sync`` waits for the
    device's queued work (the timer's ``sync``). Each call appends ``(ttft_s, decode_s)``
    to ``gen_times``: seconds from the start of prefill to the first token, and from the
    first token to the last (``gen_tokens - 1`` decode steps; 0 work when
    ``gen_tokens == 1``). Both come from one ``time.perf_counter`` clock, each reading
    taken right after ``sync()``, so no kernels queued earlier (the previous iteration's
    decode, the prefill) land in the wrong interval. TPOT per iteration is
    ``decode_s / (gen_tokens - 1)``. ``gen_times=None`` discards them (FLOP counting).
    """
    if mode == "generate":
        model = cast(GenerativeModel, prep.model)
        prep.model.eval()
        n = gen_tokens or 1
        times = gen_times if gen_times is not None else []

        def generate():
            with torch.inference_mode(), prep.autocast():
                sync()  # work queued before this call is not ours
                t0 = time.perf_counter()
                logits, cache = model(inputs, cache=[], last_only=True)
                tok = logits[:, -1].argmax(-1, keepdim=True)
                sync()
                t_first = time.perf_counter()
                for _ in range(n - 1):
                    logits, cache = model(tok, cache=cache, last_only=True)
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                sync()
                t_end = time.perf_counter()
            times.append((t_first - t0, t_end - t_first))
            return tok

        return generate
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
            return backward_and_step(loss, opt, scaler)

        return train
    raise ValueError(f"unknown mode {mode!r}")


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, task_loss: torch.Tensor,
                 alpha: float, temperature: float) -> torch.Tensor:
    """Knowledge-distillation loss (Hinton et al. 2015): ``alpha`` x T^2 x KL(teacher ||
    student) over the softmax of the logits / T, plus ``(1 - alpha)`` x the task loss.
    The T^2 factor keeps the soft-target gradients' scale independent of T. Logits are
    (..., classes); the KL divergence is summed over classes and averaged over every
    other position (batch, and tokens for language models). Computed in fp32."""
    t = temperature
    s_logp = F.log_softmax(student_logits.float().flatten(0, -2) / t, dim=-1)
    t_logp = F.log_softmax(teacher_logits.float().flatten(0, -2) / t, dim=-1)
    kd = F.kl_div(s_logp, t_logp, reduction="batchmean", log_target=True) * (t * t)
    return alpha * kd + (1.0 - alpha) * task_loss


def make_distill_step(
    teacher: Prepared,
    student: Prepared,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    inputs: Any,
    targets: Any,
    *,
    alpha: float,
    temperature: float,
) -> Callable[[], torch.Tensor]:
    """One distillation training step, as a zero-argument callable returning the loss.

    The teacher is frozen: its forward runs under ``torch.inference_mode`` (no autograd
    records, no gradients) in eval mode. The student trains as in ``train`` (AdamW,
    gradients set to None, a grad scaler where its precision needs one) on
    :func:`distill_loss` of its logits against the teacher's, mixed with ``loss_fn``
    against ``targets``. Teacher and student take the same inputs.
    """
    t_model, s_model = teacher.model, student.model
    t_model.eval()
    s_model.train()
    opt = torch.optim.AdamW(s_model.parameters(), lr=1e-4)
    scaler = student.scaler

    def distill():
        with torch.inference_mode(), teacher.autocast():
            t_logits = t_model(inputs)
        with student.autocast():
            s_logits = s_model(inputs)
            # the teacher's logits are inference tensors: read, never saved for
            # backward (the log-softmax of them that the KL term keeps is a new tensor)
            loss = distill_loss(s_logits, t_logits, loss_fn(s_logits, targets), alpha, temperature)
        return backward_and_step(loss, opt, scaler)

    return distill
