"""Bytes moved per step: the denominator of a case's arithmetic intensity. Torch-free.

The byte model counts *compulsory* traffic, each item once per pass, so it is a lower
bound on what a step really moves; the roofline bound built on it
(:mod:`hwbench.analysis.roofline`) is then an upper bound on what the case can reach,
and a case measured above it is a measurement error, not a fast case.

Per timed step (one iteration; ``generate``: one whole generation), with ``w`` the bytes
of a stored weight and ``a`` of an activation element under the case's precision
(:data:`WIDTHS`):

* **weights**: every weight a forward pass multiplies with is read once per pass and
  once per step whatever the batch (the batch shares it). Embedding tables that are
  only gathered from (BERT's token / position / segment tables, GPT-2's position
  table, an untied Llama token table) are not counted: a step reads a few rows of
  them. Mixture of experts: the active parameters only (top-k experts), a lower bound.
  2:4-sparse weights (``sparse24``) count half.
* **activations** (per sample): the input and the output of every matrix multiplication
  and convolution, once each ("layer I/O"): MLP layers; ResNet convolutions (outputs at
  their resolution, inputs counted at the output's resolution: a lower bound for
  strided ones) and the head; per transformer layer and token ``8 d + 4 kv + 2 ffn``
  elements (QKV projection in/out, attention reading q, k, v and writing its output
  -- fused attention never stores the seq x seq scores, so they are not counted -- the
  output projection, the two FFN matrices; SwiGLU's third matrix is not counted) and
  the LM head's ``d + vocab`` per token. Normalisation, activation functions and
  residual additions (more reads and writes) are not counted.
* **training** (forward + backward + AdamW): weights read twice (forward; backward for
  the input gradient), the gradient written once, and AdamW reading parameter,
  gradient, first and second moment and writing parameter and both moments: ``(2 + 1 +
  7) w`` per parameter (AdamW's state has the parameter's dtype), every parameter for
  the optimizer, the multiplied ones for the passes. Activations ``3x`` the forward
  layer I/O (backward reads each saved input and output gradient and writes the input
  gradient: ``2 (in + out)`` per layer), mirroring the 3x of the FLOP count.
* **distillation** (``distill:<student size>``, a ``train`` case): the frozen teacher
  (the case's model) in inference -- weights once, forward layer I/O, no gradient or
  optimizer -- plus the student's training step as above, on the same batch.
* **generate**: the prompt's prefill (layer I/O, the LM head on the last position
  only), then per new token the weights again (batch-shared), that token's layer I/O
  and LM head, and reading the KV cache: ``2 kv`` elements per layer per cached position.

A family without a byte model here gets none (the row says why) rather than a guess.

The *working set* (what must stay resident between steps) decides which measured
bandwidth applies: weights (+ gradient and AdamW state in training) plus half the
forward activation I/O (each intermediate is written by one layer and read by the
next). It is a lower bound too, so the bandwidth chosen is never too low.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

# precision -> (bytes per stored weight, bytes per activation element)
WIDTHS: Mapping[str, tuple[float, float]] = {
    "fp32": (4, 4), "tf32": (4, 4), "fp16": (2, 2), "bf16": (2, 2),
    "amp_fp16": (4, 2), "amp_bf16": (4, 2),  # fp32 master weights, half-precision activations
    "int8": (1, 4),  # int8 weights; activations arrive in fp32 and are quantised per call
    "fp8": (1, 2), "fp8_rowwise": (1, 2), "int8wo": (1, 2), "int4wo": (0.5, 2),
}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True)
class StepBytes:
    """Bytes one step moves (see the module docstring), and the working set."""

    total: float
    weights: float  # weight reads of the passes
    activations: float
    optimizer: float  # gradient writes + AdamW traffic (train)
    working_set: float
    model: str  # what was counted, for the row


def widths(precision: str) -> tuple[float, float] | None:
    if precision in WIDTHS:
        return WIDTHS[precision]
    try:  # a precision registered after this table was written: its weight dtype
        from .. import precisions

        b = _DTYPE_BYTES.get(precisions.get(precision).weight_dtype)
    except KeyError:
        return None
    return (b, b) if b else None


# ------------------------------------------------------------------ per family
def _transformer_token_io(cfg: Mapping[str, Any]) -> float:
    """Forward layer I/O per token of all layers, elements."""
    d = cfg["d"]
    kv = _kv_width(cfg) if "heads" in cfg else d
    ffn = cfg.get("ffn", 4 * d) * cfg.get("top_k", 1)
    return cfg["layers"] * (8 * d + 4 * kv + 2 * ffn)


def _kv_width(cfg: Mapping[str, Any]) -> int:
    d = cfg["d"]
    return cfg.get("kv_heads", cfg["heads"]) * (d // cfg["heads"])


def forward_model(family: str, fam: Any, cfg: Mapping[str, Any], shape: Any) -> tuple[float, float, float] | None:
    """(weights multiplied per pass, all parameters, forward activation I/O per sample),
    in elements; None for a family without a byte model."""
    params = float(fam.param_count(cfg))
    if family == "mlp":
        from ..models.mlp import dims

        return params, params, float(sum(a + b for a, b in dims(cfg)))
    if family == "cnn":
        from ..models.cnn import EXPANSION, _convs

        image = shape.image_size or cfg["image_size"]
        io = sum((ci + co) * hw * hw for ci, co, _, hw in _convs(cfg, image))
        fc_in = cfg["width"] * 2 ** (len(cfg["blocks"]) - 1) * EXPANSION
        return params, params, float(io + fc_in + cfg["classes"])
    if family in ("encoder", "decoder", "llama", "moe"):
        seq = shape.seq_len or cfg["seq_len"]
        d = cfg["d"]
        io = seq * _transformer_token_io(cfg)
        if family == "encoder":
            gathered = (cfg["vocab"] + cfg["max_pos"] + 2) * d
        elif family == "decoder":
            gathered = cfg["ctx"] * d
            io += seq * (d + cfg["vocab"])
        else:
            gathered = 0 if cfg.get("tied") else cfg["vocab"] * d
            io += seq * (d + cfg["vocab"])
        multiplied = float(fam.active_params(cfg)) - gathered
        return max(multiplied, 0.0), params, float(io)
    if family == "vit":
        from ..models.vit import patches

        image = shape.image_size or cfg["image_size"]
        n = patches(cfg, image)
        io = n * 3 * cfg["patch"] ** 2 + n * cfg["d"] + (n + 1) * _transformer_token_io(cfg) + cfg["d"] + cfg["classes"]
        return params, params, float(io)
    return None


def _generate_activations(family: str, cfg: Mapping[str, Any], prompt: int, new: int) -> float:
    """Activation elements per sequence for prefill + ``new - 1`` decode steps."""
    d, token_io = cfg["d"], _transformer_token_io(cfg)
    vocab = cfg["vocab"]
    total = prompt * token_io + d + vocab  # prefill, LM head on the last position
    kv = _kv_width(cfg)
    for i in range(1, new):
        ctx = prompt + i
        total += token_io + d + vocab + cfg["layers"] * 2 * kv * ctx
    return total


def step_bytes(row: Mapping[str, Any]) -> tuple[StepBytes | None, str | None]:
    """The bytes one timed step of the case in ``row`` (a derived row: ``model``,
    ``mode``, ``batch_size``, ``precision``, ``variant``, ``seq_len``, ``image_size``,
    ``gen_tokens``) moves; (None, why) where it cannot be told. A distillation case
    (``distill:<size>``) is what its step runs: the teacher (the case's model) in
    inference, plus the student training (:func:`_distill`)."""
    return _step_bytes(tuple(row.get(k) for k in _STEP_KEYS))


# what step_bytes reads of a row: its result is a function of these (cached: a sweep
# repeats each case identity many times, and load derives every row)
_STEP_KEYS = ("model", "mode", "batch_size", "precision", "variant", "seq_len", "image_size", "gen_tokens")


@functools.lru_cache(maxsize=4096)
def _step_bytes(values: tuple) -> tuple[StepBytes | None, str | None]:
    from .. import variants

    row = dict(zip(_STEP_KEYS, values))
    variant = str(row.get("variant") or "none")
    student = variants.student_of(str(row.get("model") or ""), variant) if variant.startswith("distill:") else None
    if student is not None and row.get("mode") == "train":
        return _distill(row, student)
    return _model_bytes(row, str(row.get("model") or ""), row.get("mode"), sparse=variant.startswith("sparse24"))


def _distill(row: Mapping[str, Any], student: str) -> tuple[StepBytes | None, str | None]:
    """A distillation step: the frozen teacher's forward pass (weights once, forward
    layer I/O, no gradient or optimizer state) + the student's training step (its
    weights x2, gradient + AdamW, 3 x its layer I/O), on the same batch and shape."""
    teacher, why = _model_bytes(row, str(row.get("model")), "infer")
    if teacher is None:
        return None, why
    pupil, why = _model_bytes(row, student, "train")
    if pupil is None:
        return None, why
    return StepBytes(total=teacher.total + pupil.total, weights=teacher.weights + pupil.weights,
                     activations=teacher.activations + pupil.activations, optimizer=pupil.optimizer,
                     working_set=teacher.working_set + pupil.working_set,
                     model=f"distill: teacher {row.get('model')} ({teacher.model}) + student {student} "
                           f"({pupil.model})"), None


def _model_bytes(row: Mapping[str, Any], model: str, mode: Any, sparse: bool = False
                 ) -> tuple[StepBytes | None, str | None]:
    """The bytes of one step of ``model`` in ``mode`` with the batch, shape and
    precision of ``row``; ``sparse``: 2:4-sparse weights (half of the multiplied ones)."""
    from .. import models
    from ..case import Shape

    try:
        fam, size = models.get(model)
    except KeyError:
        return None, f"unknown model {model!r}"
    cfg = fam.sizes[size]
    w = widths(row.get("precision") or "")
    if w is None:
        return None, f"no byte widths for precision {row.get('precision')!r}"
    wb, ab = w
    default = fam.default_shape(cfg)
    shape = Shape(seq_len=row.get("seq_len") or default.seq_len, image_size=row.get("image_size") or default.image_size)
    fwd = forward_model(fam.name, fam, cfg, shape)
    if fwd is None:
        return None, f"no byte model for model family {fam.name!r} (hwbench.analysis.bytes_model)"
    multiplied, params, act_io = fwd
    batch = row.get("batch_size") or 0
    if batch <= 0:
        return None, "no batch size"
    if sparse:
        multiplied *= 0.5
    notes = [f"weights {wb:g} B, activations {ab:g} B"]
    if mode == "train":
        weights = 2 * multiplied * wb
        optimizer = 8 * params * wb
        acts = 3 * act_io * batch * ab
        resident = 4 * params * wb  # weights, gradient, two AdamW moments
        notes.append("train: weights x2, gradient + AdamW 8 x params, activations 3 x forward layer I/O")
    elif mode == "generate":
        new = row.get("gen_tokens") or 1
        if "vocab" not in cfg or "layers" not in cfg:
            return None, f"no generation byte model for model family {fam.name!r}"
        weights = new * multiplied * wb
        optimizer = 0.0
        acts = _generate_activations(fam.name, cfg, shape.seq_len or cfg["seq_len"], new) * batch * ab
        resident = params * wb
        notes.append(f"generate: weights x{new} steps, KV cache reads")
    else:
        weights = multiplied * wb
        optimizer = 0.0
        acts = act_io * batch * ab
        resident = params * wb
        notes.append("infer: weights once, forward layer I/O")
    total = weights + optimizer + acts
    working = resident + act_io * batch * ab / 2
    return StepBytes(total=total, weights=weights, activations=acts, optimizer=optimizer, working_set=working,
                     model="; ".join(notes)), None
