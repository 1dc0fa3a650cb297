"""A slot KV cache: one decode forward for many requests of different lengths.

The :class:`~hwbench.models.base.GenerativeModel` cache (a list of per-layer ``(k, v)``
grown by each call) serves one sequence, or a batch whose rows all sit at the same
position. Under load the running requests sit at different positions, so a server keeps
a **slot** per request instead: per layer one key and one value tensor of shape
(slots, kv heads, max_len, head_dim), allocated once, and each slot's length.

A call ``model(ids, slots=step)`` (``step`` from :meth:`SlotCache.step`, ``ids`` of
shape (rows, new positions)) runs the rows' new positions through the model at once:

* row ``b`` belongs to slot ``rows[b]`` and its new positions continue after that
  slot's ``length`` (per-row positions for the position embedding or RoPE);
* each layer writes the rows' new keys and values at those positions in their slots;
* attention reads each row's slot up to the longest row's end and masks every key
  position after the query's own (each row sees its own valid, causal prefix; what a
  slot held for an earlier, longer request is masked out, never read);
* the model returns the logits only (the slot cache is updated in place); the lengths
  advance in :meth:`SlotCache.advance` (:func:`slot_forward` does step, forward,
  advance).

Prefill is the same call with a request's prompt in a slot whose length is 0 (several
prompts of one length may share a call); decode is one new position for every running
slot. The rows' keys and values are gathered per layer (a view where the rows are
consecutive slots, else a copy) up to the longest row's length, so a decode step reads
what the longest running request holds, for every row.

Memory: ``2 x layers x slots x kv_heads x max_len x head_dim`` elements of the dtype
the model's keys come out in (:meth:`SlotCache.nbytes`), allocated at the first write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


class SlotCache:
    """Per-layer key / value tensors (slots, kv heads, ``max_len``, head_dim), allocated
    at the first write in the dtype and device of the keys written, and each slot's
    length (positions held, a host list: no device read is needed to schedule)."""

    def __init__(self, slots: int, max_len: int):
        if slots < 1 or max_len < 1:
            raise ValueError(f"a slot cache needs slots >= 1 and max_len >= 1 (got {slots}, {max_len})")
        self.slots, self.max_len = slots, max_len
        self.lengths = [0] * slots
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []

    def free(self, slot: int) -> None:
        """Empty ``slot`` for the next request (its old keys are masked, not cleared)."""
        self.lengths[slot] = 0

    def nbytes(self) -> int:
        """Bytes the allocated key and value tensors hold (0 before the first write)."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def step(self, rows: Sequence[int], new: int, device: torch.device | str) -> SlotStep:
        """The view one forward of ``new`` positions for slots ``rows`` uses."""
        rows = list(rows)
        if not rows or len(set(rows)) != len(rows) or not all(0 <= r < self.slots for r in rows):
            raise ValueError(f"rows {rows} must be distinct slots in 0..{self.slots - 1}")
        starts = [self.lengths[r] for r in rows]
        end = max(starts) + new
        if end > self.max_len:
            raise ValueError(f"slot cache holds {self.max_len} positions; a row would reach {end}")
        start_t = torch.tensor(starts, dtype=torch.long, device=device)
        pos = start_t[:, None] + torch.arange(new, device=device)
        # key position j is visible to the query at position p when j <= p
        mask = torch.arange(end, device=device)[None, None, :] <= pos[:, :, None]
        span = (rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) else None
        rows_t = torch.tensor(rows, dtype=torch.long, device=device)
        return SlotStep(self, rows_t, span, pos, mask[:, None], end)

    def advance(self, rows: Sequence[int], new: int) -> None:
        """After a forward of ``new`` positions: the rows' slots hold ``new`` more."""
        for r in rows:
            self.lengths[r] += new

    def _layer(self, i: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if i == len(self.k):  # layers write in order at the first forward
            b, heads, t, hd = like.shape
            shape = (self.slots, heads, self.max_len, hd)
            self.k.append(torch.zeros(shape, dtype=like.dtype, device=like.device))
            self.v.append(torch.zeros(shape, dtype=like.dtype, device=like.device))
        return self.k[i], self.v[i]


@dataclass(frozen=True)
class SlotStep:
    """One forward's rows (their slots, their positions (rows, new) and the attention
    mask (rows, 1, new, end)), handed to each layer as :meth:`layer`."""

    cache: SlotCache
    rows: torch.Tensor
    span: tuple[int, int] | None  # the rows as consecutive slots [a, b), or None
    positions: torch.Tensor
    mask: torch.Tensor
    end: int  # the longest row's length after this forward

    def layer(self, i: int) -> SlotLayer:
        return SlotLayer(self, i)


@dataclass(frozen=True)
class SlotLayer:
    """Layer ``index``'s part of a :class:`SlotStep`: what an attention module gets in
    place of its ``(k, v)`` cache."""

    step: SlotStep
    index: int

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Write the rows' new ``k``, ``v`` (rows, kv heads, new, head_dim) into their
        slots; return every row's keys and values up to ``end`` and the boolean mask
        (True: attend) for ``scaled_dot_product_attention``."""
        s = self.step
        kc, vc = s.cache._layer(self.index, k)
        idx = (s.rows[:, None], slice(None), s.positions)  # -> (rows, new, heads, hd)
        kc[idx] = k.transpose(1, 2).to(kc.dtype)
        vc[idx] = v.transpose(1, 2).to(vc.dtype)
        if s.span is not None:
            keys, values = kc[s.span[0]:s.span[1], :, :s.end], vc[s.span[0]:s.span[1], :, :s.end]
        else:
            keys, values = kc[:, :, :s.end].index_select(0, s.rows), vc[:, :, :s.end].index_select(0, s.rows)
        return keys, values, s.mask


def slot_forward(model: torch.nn.Module, cache: SlotCache, ids: torch.Tensor, rows: Sequence[int],
                 last_only: bool = True) -> torch.Tensor:
    """Run ``ids`` (len(rows), new positions) for slots ``rows`` and advance their
    lengths; returns the logits ((rows, 1, vocab) with ``last_only``)."""
    step = cache.step(rows, ids.shape[1], ids.device)
    logits = model(ids, slots=step, last_only=last_only)
    cache.advance(rows, ids.shape[1])
    return logits
