"""Feeding and saving: the derived columns of data and checkpoint cases, and whether a
training case is input-bound (docs/io.md).

Pure functions over a case's record and the rows :mod:`hwbench.analysis.derive`
builds; no I/O.

**The input-bound rule.** A train case and the data cases of the same run, host, model,
batch size, input shape (sequence length or image size), precision and device are
partners. Each data case's ``input_headroom`` is its ``throughput_samples_per_s`` over
the train case's; the train case's ``input_headroom`` is that of its fastest partner
(the pipeline setting a user would pick; ``input_loader`` names it), and it is
``input_bound`` when that headroom is below 1: even the best measured pipeline delivers
fewer samples per second than the step consumes. Without an ok partner on both sides
both columns are empty (not False: nothing was measured to decide it).
"""

from __future__ import annotations

import statistics
from typing import Any

IO_LOADER_KEYS = ("num_workers", "pin_memory", "prefetch_factor", "persistent_workers")
# what makes a train case and a data case partners (besides the run and host)
PARTNER_KEYS = ("model", "batch_size", "seq_len", "image_size", "precision", "device")


def io_columns(c: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The columns of a data or checkpoint case (``c`` a records.CaseResult, ``row`` its
    row so far, with ``throughput_samples_per_s`` and ``measured_s``); {} otherwise.

    * data: ``throughput_samples_per_s`` sustained (batch x timed batches / their total
      time, not from the median batch), ``bytes_per_s`` (samples/s x file bytes per sample), ``loader_wait_fraction``
      (the consumer's time waiting on the loader over the timed window),
      ``loader_cpu_util_pct`` (the loader processes' CPU time over the window, % of one
      core; the consumer's own where num_workers = 0), ``data_bytes_per_sample``;
    * checkpoint: ``checkpoint_bytes``, ``checkpoint_save_s_p50`` / ``checkpoint_load_s_p50``
      (medians of the timed saves / loads) and ``checkpoint_save_gbs`` /
      ``checkpoint_load_gbs`` (bytes on disk / median time, 1e9 bytes per GB),
      ``checkpoint_blocked_s_p50`` (async saves: the caller's blocked time),
      ``checkpoint_load_from``. Samples per second mean nothing for a checkpoint: the
      column is emptied there, as are the FLOP figures (no step ran).
    """
    mode, f, m = c.case.mode, c.facts, c.measurement
    if mode not in ("data", "checkpoint"):
        return {}
    out: dict[str, Any] = {"achieved_tflops": None, "mfu": None, "flops_per_sample": None,
                           "scratch_fs_type": f.scratch_fs_type if f is not None else None}
    if f is None or m is None:
        return out
    window = row.get("measured_s") or 0.0
    if mode == "data":
        # sustained: every timed batch over the time they took together. A loader
        # delivers in bursts (prefetched batches at once, then a wait), so the median
        # batch time would overstate the rate
        times = [t for r in m.raw_times_s for t in r]
        bs = row.get("batch_size") or c.case.batch_size
        tput = bs * len(times) / sum(times) if times and sum(times) > 0 else None
        per = f.data_bytes_per_sample
        seq = c.case.seq_len
        out.update(
            throughput_samples_per_s=tput,
            processed_tokens_per_s=tput * seq if tput is not None and seq else None,
            data_bytes_per_sample=per,
            bytes_per_s=tput * per if tput is not None and per is not None else None,
            loader_wait_fraction=f.data_loader_wait_s / window if f.data_loader_wait_s is not None and window else None,
            loader_cpu_util_pct=(100.0 * f.data_loader_cpu_s / window
                                 if f.data_loader_cpu_s is not None and window else None),
        )
        return out
    saves = [t for r in m.raw_times_s for t in r]
    save_s = statistics.median(saves) if saves else None
    load_s = statistics.median(f.checkpoint_load_s) if f.checkpoint_load_s else None
    n = f.checkpoint_bytes
    out.update(
        throughput_samples_per_s=None, processed_tokens_per_s=None,
        checkpoint_bytes=n, checkpoint_save_s_p50=save_s, checkpoint_load_s_p50=load_s,
        checkpoint_save_gbs=n / save_s / 1e9 if n is not None and save_s else None,
        checkpoint_load_gbs=n / load_s / 1e9 if n is not None and load_s else None,
        checkpoint_blocked_s_p50=statistics.median(f.checkpoint_blocked_s) if f.checkpoint_blocked_s else None,
        checkpoint_load_from=f.checkpoint_load_from,
    )
    return out


def loader_label(row: dict[str, Any]) -> str:
    """A data case's loader settings as its case id writes them (``w2/pin/pf2``)."""
    parts = [f"w{row.get('num_workers')}"]
    if row.get("pin_memory"):
        parts.append("pin")
    if row.get("prefetch_factor") is not None:
        parts.append(f"pf{row.get('prefetch_factor')}")
    if row.get("persistent_workers"):
        parts.append("persist")
    return "/".join(parts)


def _key(r: dict[str, Any]) -> tuple:
    return (r.get("run_id"), r.get("hostname"), *(r.get(k) for k in PARTNER_KEYS))


def _rate(r: dict[str, Any]) -> float | None:
    v = r.get("throughput_samples_per_s")
    ok = r.get("status") == "ok" and isinstance(v, (int, float)) and v == v and v > 0
    return float(v) if ok else None


def input_headroom(rows: list[dict[str, Any]]) -> None:
    """Add ``input_headroom``, ``input_bound`` and ``input_loader`` to train and data
    rows (in place) by the rule of the module docstring."""
    train: dict[tuple, list[dict[str, Any]]] = {}
    data: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("mode") == "train" and r.get("parallelism") in (None, "none"):
            train.setdefault(_key(r), []).append(r)
        elif r.get("mode") == "data":
            data.setdefault(_key(r), []).append(r)
    for k, trs in train.items():
        feeds = [(d, _rate(d)) for d in data.get(k, [])]
        feeds = [(d, v) for d, v in feeds if v is not None]
        for t in trs:
            step = _rate(t)
            if step is None or not feeds:
                continue
            best, v = max(feeds, key=lambda dv: dv[1])
            t["input_headroom"] = v / step
            t["input_bound"] = v < step
            t["input_loader"] = loader_label(best)
    for k, ds in data.items():
        steps = [v for v in (_rate(t) for t in train.get(k, [])) if v is not None]
        for d in ds:
            v = _rate(d)
            if v is not None and len(steps) == 1:  # against several train cases the ratio is theirs
                d["input_headroom"] = v / steps[0]


# ------------------------------------------------------------------- report frames
_FEED_KEY = ["run_id", "hostname", *PARTNER_KEYS]


def feeding_table(df):
    """Per run, host, model, batch, shape, precision and device: the train case's
    samples/s against its data cases' (the fastest, and its loader settings), with the
    headroom and the verdict; one row per train case with partners, then one per data
    case without a train partner (headroom empty)."""
    import pandas as pd

    ok = df[df["status"] == "ok"]
    train = ok[(ok["mode"] == "train") & ok["input_headroom"].notna()]
    data = ok[ok["mode"] == "data"]
    rows = []
    for _, t in train.iterrows():
        rows.append({**{k: t[k] for k in _FEED_KEY}, "backend": t["backend"],
                     "train_samples_per_s": t["throughput_samples_per_s"],
                     "data_samples_per_s": t["throughput_samples_per_s"] * t["input_headroom"],
                     "input_loader": t["input_loader"], "input_headroom": t["input_headroom"],
                     "input_bound": bool(t["input_bound"])})
    matched = {tuple(r[k] for k in _FEED_KEY) for r in rows}
    for key, g in data.groupby(_FEED_KEY, dropna=False, sort=False):
        if tuple(key) in matched:
            continue
        best = g.loc[g["throughput_samples_per_s"].idxmax()]
        rows.append({**{k: best[k] for k in _FEED_KEY}, "backend": None, "train_samples_per_s": None,
                     "data_samples_per_s": best["throughput_samples_per_s"], "input_loader": loader_label(best),
                     "input_headroom": None, "input_bound": None})
    cols = [*_FEED_KEY, "backend", "train_samples_per_s", "data_samples_per_s", "input_loader", "input_headroom",
            "input_bound"]
    return pd.DataFrame(rows, columns=cols)


def data_cases(df):
    """Every ok data case with its pipeline figures, by model then loader settings."""
    ok = df[(df["status"] == "ok") & (df["mode"] == "data")].copy()
    ok["loader"] = [loader_label(r) for r in ok.to_dict("records")]
    return ok.sort_values(["run_id", "model", "batch_size", "num_workers"], kind="stable")


def checkpoint_cases(df):
    """Every ok checkpoint case: bytes, save and load GB/s and seconds, the filesystem.
    A sharded case's checkpointer reads with its group as its case id writes it
    (``dcp fsdp2``: fsdp over 2 ranks)."""
    ok = df[(df["status"] == "ok") & (df["mode"] == "checkpoint")].copy()
    if "parallelism" in ok and "world_size" in ok:
        par = ok["parallelism"].fillna("none") != "none"
        ok.loc[par, "checkpointer"] = (ok.loc[par, "checkpointer"] + " " + ok.loc[par, "parallelism"]
                                       + ok.loc[par, "world_size"].astype("Int64").astype(str))
    return ok.sort_values(["run_id", "model", "checkpointer"], kind="stable")
