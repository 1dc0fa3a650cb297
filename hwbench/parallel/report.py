"""What each rank reports (typed, one JSON file per rank in the case's job folder) and
the pure merge of a group's reports into one case outcome. Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..records import Facts, Flag, Measurement

COMM_MEASURED_BY = ("torch.profiler over {n} steps after the timed window: busy time of the communication "
                    "backend's collective and point-to-point operations ({kinds} events; they may overlap "
                    "compute), and the bytes of their input tensors")


class RankReport(BaseModel):
    """One rank's raw results. Times are seconds; ``t_*`` are time.monotonic() marks
    (one clock for every process of a host)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int
    pid: int
    hostname: str = ""
    status: Literal["ok", "failed", "oom"]
    reason: str = ""
    raw_times_s: list[list[float]] = []  # per repeat, per timed step: this rank's time
    first_iter_s: float | None = None
    warmup_s: float | None = None
    t_start: float | None = None  # the rank's code running
    t_ready: float | None = None  # model built, strategy applied
    t_first_timed: float | None = None
    t_window_end: float | None = None
    comm_s_per_step: float | None = None
    comm_bytes_per_step: float | None = None
    comm_measured_by: str | None = None
    comm_exposed_s_per_step: float | None = None
    param_rel_l2_vs_none: float | None = None
    param_rel_l2_steps: int | None = None
    memory_peak_bytes: int | None = None
    host_rss_peak_bytes: int | None = None
    threads_used: int | None = None
    params: int | None = None
    flops_per_sample: float | None = None
    group_batch: int | None = None
    t_failed: float | None = None  # time.time() when the rank caught its failure (which rank failed first)
    compiles_in_window: int | None = None  # torch.compile compilations during the timed steps (should be 0)
    # sharded checkpoint cases (hwbench.io.sharded): raw_times_s holds the save times
    checkpoint_load_s: list[float] | None = None  # per round, this rank's
    checkpoint_blocked_s: list[float] | None = None  # dcp_async: per round, this rank's
    checkpoint_bytes: int | None = None  # every file of the checkpoint (rank 0)
    checkpoint_files: int | None = None
    checkpoint_shard_bytes: list[int] | None = None  # each shard data file (rank 0)
    checkpoint_load_from: str | None = None
    scratch_fs_type: str | None = None


class AgentReport(BaseModel):
    """What the elastic agent saw: each failed rank's exit code (negative: the signal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["ok", "failed"]
    failures: dict[int, dict] = {}  # rank -> {"exitcode", "signal", "timestamp", "pid"}
    error: str = ""


def read_reports(job_dir: Path) -> dict[int, RankReport]:
    out = {}
    for p in sorted(Path(job_dir).glob("rank*.json")):
        try:
            r = RankReport.model_validate_json(p.read_text())
        except (OSError, ValueError):
            continue
        out[r.rank] = r
    return out


def slowest(reports: list[RankReport]) -> list[list[float]]:
    """Per repeat and step, the slowest rank's time: the group's step time (ranks start
    each step together, aligned by a collective before it)."""
    rounds = [r.raw_times_s for r in reports]
    n_rep = min(len(x) for x in rounds)
    out = []
    for i in range(n_rep):
        n = min(len(x[i]) for x in rounds)
        out.append([max(x[i][j] for x in rounds) for j in range(n)])
    return out


def merge(reports: dict[int, RankReport]) -> tuple[Measurement, Facts, dict[str, float]]:
    """The case's measurement, facts and timestamps from every rank's ``ok`` report (on
    one node of a multi-node run: that node's ranks; :mod:`hwbench.merge` joins the
    nodes)."""
    rs = [reports[r] for r in sorted(reports)]
    r0 = rs[0]
    w0 = min(r.t_first_timed for r in rs)
    w1 = max(r.t_window_end for r in rs)
    m = Measurement(raw_times_s=slowest(rs), first_iter_s=max(r.first_iter_s for r in rs),
                    warmup_s=max(r.warmup_s for r in rs), measured_s=w1 - w0)
    comm = [r.comm_s_per_step for r in rs if r.comm_s_per_step is not None]
    nbytes = [r.comm_bytes_per_step for r in rs if r.comm_bytes_per_step is not None]
    mem = [r.memory_peak_bytes for r in rs]
    facts = Facts(
        params=r0.params or 0,
        flops_per_sample=r0.flops_per_sample or 0.0,
        threads_used=r0.threads_used,
        host_rss_peak_bytes=max(r.host_rss_peak_bytes or 0 for r in rs),
        memory_peak_bytes=max(mem) if all(x is not None for x in mem) else None,
        global_batch_size=r0.group_batch,
        rank_memory_peak_bytes=mem if all(x is not None for x in mem) else None,
        rank_host_rss_peak_bytes=[r.host_rss_peak_bytes or 0 for r in rs],
        comm_s_per_step=max(comm) if comm else None,
        comm_bytes_per_step=max(nbytes) if nbytes else None,
        comm_measured_by=r0.comm_measured_by,
        comm_exposed_s_per_step=_max(r.comm_exposed_s_per_step for r in rs),
        param_rel_l2_vs_none=_max(r.param_rel_l2_vs_none for r in rs),
        param_rel_l2_steps=r0.param_rel_l2_steps,
        ranks=[r.rank for r in rs],
        **_checkpoint(rs),
    )
    ts = {"worker_start": max(r.t_start for r in rs), "ready": max(r.t_ready for r in rs),
          "first_timed": w0, "window_end": w1}
    return m, facts, ts


def _checkpoint(rs: list[RankReport]) -> dict:
    """A sharded checkpoint case's facts: per round the slowest rank's load (and
    blocked) time, the bytes and files rank 0 counted; {} for other cases."""
    r0 = rs[0]
    if r0.checkpoint_load_s is None:
        return {}
    blocked = [r.checkpoint_blocked_s for r in rs if r.checkpoint_blocked_s is not None]
    return {"checkpoint_load_s": [max(t) for t in zip(*(r.checkpoint_load_s or [] for r in rs))],
            "checkpoint_blocked_s": [max(t) for t in zip(*blocked)] if blocked else None,
            "checkpoint_bytes": r0.checkpoint_bytes, "checkpoint_files": r0.checkpoint_files,
            "checkpoint_shard_bytes": r0.checkpoint_shard_bytes,
            "checkpoint_load_from": r0.checkpoint_load_from, "scratch_fs_type": r0.scratch_fs_type}


def _max(values):
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def window_flags(reports: dict[int, RankReport]) -> list[Flag]:
    """Quality flags from the ranks' reports: compilations inside the timed window (a
    model that kept recompiling past the warmup's limit) put compile time into steps."""
    late = {r: x.compiles_in_window for r, x in sorted(reports.items()) if x.compiles_in_window}
    if not late:
        return []
    detail = ", ".join(f"rank {r}: {n}" for r, n in late.items())
    return [Flag(flag="compiled_in_window", detail=f"torch.compile compilations during the timed steps ({detail}): "
                 "those steps include compile time; the model keeps recompiling (see TORCH_LOGS=recompiles)")]
