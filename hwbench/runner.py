"""Scheduling a run: plan the cases, run them one by one through the launcher, assemble
each result, and save the record after every case. Signals (Ctrl-C, SIGTERM) stop the
run between cases or, past a grace period, abandon the running one.

The run record is immutable: after each case the runner builds a new
:class:`~hwbench.records.RunRecord` and writes it atomically, so the file is complete
and valid at every instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from . import backends, launch
from .errors import ResultsError, UserError
from .records import CaseIdentity, CaseResult, Flag, Overheads, RunRecord
from .merge import merge_facts
from .results import safe_filename_part, write_atomic
from .spec import Case, LoadedSuite

FINISHED = ("ok", "skipped")  # kept on resume; failed / oom / timeout are run again


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Planned:
    case: Case
    skip_reason: str | None
    device_name: str | None  # the device's model name, e.g. "NVIDIA H100 80GB HBM3"
    device: str | None = None  # the resolved device, e.g. "cuda:0" for "cuda" or "auto"


FILTER_FIELDS = tuple(sorted(set(Case.__dataclass_fields__) | {"family", "size"}))


def parse_filter(exprs: Iterable[str]) -> list[Callable[[Case], bool]]:
    """``--filter`` expressions -> predicates on a Case; a case runs if any matches.
    ``field=glob[,field=glob...]`` matches fields (all must match); anything else is a
    glob on ``case_id`` (a plain word matches as a substring)."""
    preds = []
    for expr in exprs:
        if "=" in expr:
            terms = []
            for term in expr.split(","):
                key, _, pat = term.partition("=")
                key = key.strip()
                if key not in FILTER_FIELDS:
                    raise UserError(f"--filter {expr!r}: unknown field {key!r}; fields: {', '.join(FILTER_FIELDS)}")
                terms.append((key, pat.strip()))

            def pred(c: Case, terms=terms) -> bool:
                vals = {**c.to_dict(), "family": c.family, "size": c.size}
                return all(fnmatch.fnmatchcase(str(vals[k]), p) for k, p in terms)

        else:
            pat = expr if any(ch in expr for ch in "*?[") else f"*{expr}*"

            def pred(c: Case, pat=pat) -> bool:
                return fnmatch.fnmatchcase(c.case_id, pat)

        preds.append(pred)
    return preds


def select(suite: LoadedSuite, filters: Iterable[str] = ()) -> list[Case]:
    """The suite's cases that match ``filters`` (all of them without filters)."""
    preds = parse_filter(filters)
    out = [c for c in suite.cases if not preds or any(p(c) for p in preds)]
    if preds and not out:
        raise UserError(f"{suite.path}: --filter matched none of the suite's {len(suite.cases)} cases")
    return out


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else every core)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_ranks_reason(case: Case, nnodes: int, cores: int) -> str | None:
    """CPU ranks share the cores, one core at least each: more ranks per node than
    usable cores is skipped, as more ranks than GPUs is on CUDA."""
    here = case.world_size // nnodes
    if here > cores:
        per = f" ({nnodes} nodes: {here} per node)" if nnodes > 1 else ""
        return (f"{case.parallelism}: world size {case.world_size}{per} needs {here} CPU cores (one per rank); "
                f"this machine has {cores} usable")
    return None


def plan(suite: LoadedSuite, filters: Iterable[str] = (), present=None, nodes=None,
         cores: int | None = None) -> list[Planned]:
    """Every selected case with the device it resolves to, or why it cannot run here.
    ``nodes`` (:class:`hwbench.parallel.nodes.Nodes`): a multi-node run, where only
    parallel cases that split evenly over the nodes run. ``cores``: the usable CPU
    cores (default: this process's, :func:`usable_cores`)."""
    from . import devices

    from . import parallel

    cases = select(suite, filters)
    present = devices.present() if present is None else present
    settings = suite.spec.settings
    out = []
    for case in cases:
        dev = backends.resolve_device(case.device, present)
        why = backends.unsupported_reason(case, dev)
        if why is None and nodes is not None:
            why = nodes.requires(case)
        if why is None and dev is not None and case.parallelism != "none":
            n = sum(d.kind == dev.kind for d in present)
            nnodes = nodes.nnodes if nodes else 1
            why = parallel.requires(case, dev.kind, n, settings, nnodes=nnodes)
            if why is None and dev.kind == "cpu":
                why = _cpu_ranks_reason(case, nnodes, usable_cores() if cores is None else cores)
        out.append(Planned(case, why, dev.model if dev else None, dev.name if dev else None))
    return out


def auto_expansion(p: Planned, limit: int) -> list[Planned]:
    """The concrete cases of a batch_sizes = ["auto"] case: powers of two up to the limit."""
    sizes = [2**k for k in range(limit.bit_length()) if 2**k <= limit]
    return [Planned(dataclasses.replace(p.case, batch_size=b), None, p.device_name, p.device) for b in sizes]


def pending(planned: list[Planned], record: RunRecord) -> list[Planned]:
    """The planned cases ``record`` has no finished (ok / skipped) result for. An auto
    batch case whose search finished counts through its expanded cases."""
    done = {c.case_id for c in record.cases if c.status in FINISHED}
    out = []
    for p in planned:
        if p.case.auto_batch and p.skip_reason is None and p.case.case_id in record.batch_limits:
            limit = record.batch_limits[p.case.case_id].batch_limit
            if all(e.case.case_id in done for e in auto_expansion(p, limit)):
                continue
        elif p.case.case_id in done:
            continue
        out.append(p)
    return out


# ----------------------------------------------------------------------------- results
def assemble(p: Planned, run: launch.CaseRun, collection=None, segment: int = 0) -> CaseResult:
    """A case result from what the launcher observed, the worker reported and the
    collectors measured. Pure: no clocks, no I/O."""
    o = run.outcome
    ts = o.timestamps if o is not None else {}
    timing: dict[str, float] = {}
    if run.status != "skipped":
        timing["wall_s"] = run.end - run.launch
    if "first_timed" in ts:
        timing.update({
            # launch -> first timed iteration: what isolation + setup + warmup cost
            "fixed_cost_s": ts["first_timed"] - ts["launch"],
            "launch_s": ts["worker_start"] - ts["launch"],
            "setup_s": ts["ready"] - ts["worker_start"],
            "warmup_s": ts["first_timed"] - ts["ready"],
        })
    flags: list[Flag] = list(o.flags) if o is not None else []
    extra: dict[str, Any] = {}
    if collection is not None:
        flags += list(collection.flags)
        extra = {"collectors": collection.collectors, "energy": collection.energy}
    ok = run.status == "ok" and o is not None
    return CaseResult(
        case_id=p.case.case_id,
        case=CaseIdentity(**p.case.to_dict()),
        segment=segment,
        status=run.status,
        reason=run.reason,
        device_name=p.device_name,
        device_resolved=p.device,
        measurement=o.measurement if ok else None,
        facts=o.facts if ok else None,
        timing=Overheads(**timing),
        flags=flags,
        **extra,
    )


def with_case(record: RunRecord, result: CaseResult) -> RunRecord:
    """``record`` with ``result`` added, replacing an earlier result of the same case
    (a failed case run again on resume)."""
    kept = [c for c in record.cases if c.case_id != result.case_id]
    return record.model_copy(update={"cases": [*kept, result]})


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- signals
class Reporter:
    """Receives progress; the CLI's shows a progress bar. This one stays silent."""

    def start(self, total: int, done: int) -> None: ...
    def grow(self, n: int) -> None: ...
    def case_started(self, case: Case) -> None: ...
    def case_done(self, result: CaseResult | None) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class StopRequest:
    """What the signals asked for. First Ctrl-C: stop after the running case. First
    SIGTERM (kill, timeout, systemd, Slurm preemption, CI cancellation): stop, letting
    the running case finish within ``grace_s``, else abandon it. A second signal of
    either kind: abandon the running case now."""

    grace_s: float = 10.0
    signal_name: str | None = None
    abandon_at: float | None = None
    count: int = 0
    peer: str | None = None  # multi-node: what another node said when it stopped

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    @property
    def exit_code(self) -> int:
        """143 after SIGTERM, 130 after Ctrl-C; a node stopped by another node's stop
        takes that node's code (143 when node 0's store vanished)."""
        if self.peer is not None:
            return 130 if self.peer.endswith("SIGINT") else 143
        return 143 if self.signal_name == "SIGTERM" else 130

    def peer_stopped(self, said: str) -> None:
        """Another node of a multi-node run stopped: stop too, abandoning the running
        case at once (its group cannot finish without that node's ranks)."""
        if self.peer is None and self.signal_name is None:
            self.peer, self.signal_name = said, said
            self.abandon_at = time.monotonic()

    def on_signal(self, signum: int) -> str:
        name = signal.Signals(signum).name
        self.count += 1
        now = time.monotonic()
        if self.count > 1:
            self.abandon_at = now
            return f"{name} again: abandoning the running case now."
        self.signal_name = name
        if signum == signal.SIGTERM:
            self.abandon_at = now + self.grace_s
            return f"SIGTERM: stopping; the running case gets {self.grace_s:g} s to finish, then it is abandoned."
        return "Ctrl-C: finishing the current case, then stopping (press Ctrl-C again to abandon it now)."

    def abandon_reason(self) -> str | None:
        if self.abandon_at is not None and time.monotonic() >= self.abandon_at:
            return f"abandoned after {self.signal_name}"
        return None


@dataclass
class Runner:
    suite: LoadedSuite
    out_path: Path
    reporter: Reporter = field(default_factory=Reporter)
    collectors: Any = None  # a CollectorSet (hwbench.collectors), or None
    segment: int = 0
    fault: tuple[str, str] | None = None  # (glob on case_id, kind): tests only
    stop: StopRequest = field(default_factory=StopRequest)
    write_error: str | None = None
    coordinator: Any = None  # a multi-node run: hwbench.parallel.nodes.Coordinator
    rerun: frozenset = frozenset()  # finished cases to run again (multi-node: another node lacks them)
    launcher: launch.Launcher = field(default_factory=launch.ProcessLauncher)  # tests: an in-process fake

    def should_abandon(self) -> str | None:
        """Why the running case must stop now: past the grace period after a signal, or
        (multi-node) another node stopped."""
        why = self.stop.abandon_reason()
        if why is None and self.coordinator is not None:
            peer = self.coordinator.stopped()
            if peer:
                self.stop.peer_stopped(peer)
                why = f"abandoned: {peer}"
        return why

    def fault_for(self, case: Case) -> str | None:
        """The fault to inject into ``case``'s single worker (it is rank 0)."""
        if self.fault and fnmatch.fnmatchcase(case.case_id, self.fault[0]):
            if len(self.fault) > 2 and self.fault[2] != 0:
                return None
            return self.fault[1]
        return None

    def group_fault_for(self, case: Case) -> dict | None:
        """The fault for a parallel case: its kind and the rank it hits (None: every rank)."""
        if self.fault and fnmatch.fnmatchcase(case.case_id, self.fault[0]):
            return {"kind": self.fault[1], "rank": self.fault[2] if len(self.fault) > 2 else None}
        return None

    def _flush(self, record: RunRecord) -> RunRecord:
        record = record.model_copy(update={"updated": now_iso()})
        try:
            write_atomic(self.out_path, record)
        except OSError as e:
            raise ResultsError(f"{self.out_path}: cannot write the results file: {e.strerror or e}") from None
        return record

    def _handler(self, signum, frame) -> None:
        self.reporter.message(self.stop.on_signal(signum))

    # ---- the run
    def run(self, planned: list[Planned], record: RunRecord, scope: list[Planned] | None = None) -> RunRecord:
        """Run every planned case ``record`` has not finished; save after each. Returns
        the final record (also on disk). ``scope`` is what the whole run covers (the
        first segment's selection): the run is ``complete`` once all of it is done.
        A write error (disk full) stops the run with the last good file on disk and
        sets ``write_error``."""
        todo = pending(planned, record)
        if self.rerun:
            ids = {p.case.case_id for p in todo} | self.rerun
            todo = [p for p in planned if p.case.case_id in ids]
        self.reporter.start(len(planned), len(planned) - len(todo))
        record = record.model_copy(update={"status": "running"})
        record = self._flush(record)  # fails early (one line) where the file cannot be written
        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        queue = deque(todo)
        try:
            while queue and not self.stop.requested:
                peer = self.coordinator.stopped(every_s=0) if self.coordinator is not None else None
                if peer:
                    self.stop.peer_stopped(peer)
                    break  # another node stopped: its ranks would not come to the next rendezvous
                p = queue.popleft()
                self.reporter.case_started(p.case)
                if p.case.auto_batch and p.skip_reason is None:
                    expanded = self._expand_auto(p, record)
                    if isinstance(expanded, tuple):
                        record, new = expanded
                        done = {c.case_id for c in record.cases if c.status in FINISHED}
                        new = [e for e in new if e.case.case_id not in done]
                        queue.extendleft(reversed(new))
                        self.reporter.grow(len(new) - 1)
                        self.reporter.case_done(None)
                        continue
                    run = expanded  # the failed search
                elif p.skip_reason:
                    run = launch.CaseRun("skipped", p.skip_reason)
                else:
                    run, collection = self._run_one(p)
                    if run.status == "abandoned":
                        break
                    result = assemble(p, run, collection, self.segment)
                    record = self._flush(with_case(record, result))
                    self.reporter.case_done(result)
                    continue
                result = assemble(p, run, None, self.segment)
                record = self._flush(with_case(record, result))
                self.reporter.case_done(result)
            if self.coordinator is not None and self.stop.requested and not self.stop.peer:
                self.coordinator.say_stop(self.stop.signal_name or "stopped")
            status = "interrupted" if self.stop.requested else self._final_status(record, planned, scope or planned)
            record = self._flush(record.model_copy(update={"status": status}))
        except ResultsError as e:
            self.write_error = str(e)
        except BaseException:
            # a bug (or an exception from outside): the file keeps every finished case;
            # say that the run did not end normally, then show the traceback
            with contextlib.suppress(Exception):
                record = self._flush(record.model_copy(update={"status": "interrupted"}))
            raise
        finally:
            self.reporter.stop()
            for s, h in old.items():
                signal.signal(s, h)
        return record

    @staticmethod
    def _final_status(record: RunRecord, planned: list[Planned], scope: list[Planned]) -> str:
        """``complete`` when this segment ran everything of the run's scope that had no
        finished result; ``partial`` when its filters left some of that for later (a
        failed case another segment selected stays as it was, to be run again)."""
        selected = {p.case.case_id for p in planned}
        left = [p for p in pending(scope, record) if p.case.case_id not in selected]
        return "partial" if left else "complete"

    def _expand_auto(self, p: Planned, record: RunRecord):
        """batch_sizes = ["auto"]: find (or, on resume, reuse) the batch limit, then
        return (record, cases for the powers of two up to it) -- or the failed search."""
        info = record.batch_limits.get(p.case.case_id)
        if info is None:
            run, _ = self._run_one(p, probe=True)
            if run.status != "ok":
                run.reason = f"batch limit search: {run.reason}"
                return run
            info = run.outcome.batch_limit
            record = self._flush(record.model_copy(update={"batch_limits": {**record.batch_limits, p.case.case_id: info}}))
        return record, auto_expansion(p, info.batch_limit)

    def _run_one(self, p: Planned, probe: bool = False):
        """Run case ``p`` (or its batch-limit search) and collect its readings. With
        ``repeats >= PROCESS_ISOLATED_REPEATS`` every repeat runs in its own fresh worker
        (:func:`merge_repeats` makes one result of them), so the repeats vary by
        run-to-run noise and not only by iteration noise."""
        settings = self.suite.spec.settings
        n = settings.repeats
        if p.case.parallelism != "none" and not probe:
            return self._run_group(p, settings)
        if probe or n < PROCESS_ISOLATED_REPEATS:
            return self._run_worker(p, settings, probe)
        # one repeat per worker; the energy window that all repeats together must reach
        # (min_energy_window_s) is shared among them as the single worker would
        one = settings.model_copy(update={"repeats": 1, "min_energy_window_s": settings.min_energy_window_s / n})
        runs, collections = [], []
        for _ in range(n):
            run, collection = self._run_worker(p, one, False)
            runs.append(run)
            collections.append(collection)
            if run.status != "ok":
                break
        return merge_repeats(runs, collections)

    def _run_worker(self, p: Planned, settings, probe: bool):
        cs = None if probe else self.collectors
        limit = int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb else None

        def on_progress(msg) -> None:
            if cs is not None:
                cs.mark(msg.event, msg.t)

        run = self.launcher.run_worker(
            launch.WorkerJob(p.case, settings, p.device, p.device_name or "", limit, self.fault_for(p.case), probe),
            name=f"hwbench-worker {p.case.case_id}",
            timeout_s=settings.timeout_s,
            memory_capped_gb=settings.memory_limit_gb if limit and not (p.device or "").startswith("cuda") else None,
            on_start=(cs.case_begin if cs is not None else (lambda pid: None)),
            on_progress=on_progress,
            should_abandon=self.should_abandon,
        )
        collection = None
        if cs is not None:
            collection = cs.case_end(run.window if run.status == "ok" else None, p.device)
        return run, collection


    def _run_group(self, p: Planned, settings):
        """A parallel case: one torchrun group (launch.run_group); all its repeats run in it.
        CPU ranks share the host's cores: each gets ``threads`` or an equal share."""
        import os

        cs = self.collectors
        kind = (p.device or "cpu").split(":")[0]
        threads = p.case.threads
        here = p.case.world_size // (self.coordinator.nodes.nnodes if self.coordinator is not None else 1)
        if threads is None and kind == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            threads = max(1, cores // here)
        limit = int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb else None
        run = self.launcher.run_group(
            p.case, settings, device_kind=kind, world_size=p.case.world_size, threads=threads,
            memory_limit_bytes=limit, fault=self.group_fault_for(p.case), timeout_s=settings.timeout_s,
            on_start=(cs.case_begin if cs is not None else (lambda pid: None)),
            should_abandon=self.should_abandon, nodes=self._nodes_job(p, settings),
        )
        collection = None
        if cs is not None:
            # on CUDA every local rank has its own GPU (cuda:<local rank>): energy is their sum
            used = tuple(f"cuda:{i}" for i in range(here)) if kind == "cuda" else None
            collection = cs.case_end(run.window if run.status == "ok" else None, p.device, devices=used)
        return run, collection

    def _nodes_job(self, p: Planned, settings) -> dict | None:
        """What a multi-node case's agent needs to join the others (job.json ``nodes``)."""
        if self.coordinator is None:
            return None
        n = self.coordinator.nodes
        return {"nnodes": n.nnodes, "node_rank": n.node_rank, "endpoint": n.endpoint,
                "rdzv_id": n.rdzv_id(p.case.case_id), "join_timeout_s": max(30.0, settings.timeout_s)}


# From this many repeats on, each repeat runs in its own fresh worker process. Within one
# process, iteration noise understates run-to-run drift (a public CI study found 2.8 %
# within a run against 14.8 % between jobs); fresh processes put allocation, cache and
# thread placement back into the noise, and comparisons (hwbench compare) then use the
# per-repeat medians as their unit. Below it, repeats share one worker (cheaper).
PROCESS_ISOLATED_REPEATS = 3


def merge_repeats(runs: list[launch.CaseRun], collections: list) -> tuple[launch.CaseRun, Any]:
    """One result from single-repeat workers of the same case. Pure.

    * Every worker ok: raw times are one list per worker (``repeat_isolation =
      "process"``), ``measured_s`` and generation times add up; the first worker's
      first-iteration time, warmup, accuracy and timestamps stand for the case; memory
      peaks are the largest of the workers', MoE router counts the sum over every
      worker's timed iterations (:func:`merge_facts`); flags of every worker are kept,
      without duplicates.
    * A worker that failed, ran out of memory or timed out: the case has that status,
      its reason prefixed with the repeat ("repeat 2/3: ...").
    * Collectors: the energy of every timed window is summed (windows and energy; the
      gaps between workers -- launch, setup, warmup -- are not in it); the first
      repeat's sampler summaries and time series stand for the case.
    """
    from .worker import Outcome

    last = runs[-1]
    first_launch = runs[0].launch
    if last.status != "ok" or last.outcome is None:
        k = len(runs)
        reason = f"repeat {k}: {last.reason}" if k > 1 else last.reason
        bad = dataclasses.replace(last, reason=reason, launch=first_launch)
        return bad, collections[-1]
    outs = [r.outcome for r in runs]
    ms = [o.measurement for o in outs]
    gen = all(m.ttft_s is not None for m in ms)
    measurement = ms[0].model_copy(update={
        "raw_times_s": [list(r) for m in ms for r in m.raw_times_s],
        "measured_s": sum(m.measured_s for m in ms),
        "ttft_s": [t for m in ms for t in m.ttft_s] if gen else None,
        "decode_s": [t for m in ms for t in (m.decode_s or [])] if gen and all(m.decode_s for m in ms) else None,
        "repeat_isolation": "process",
    })
    flags = tuple(dict.fromkeys(f for o in outs for f in o.flags))
    outcome = Outcome("ok", measurement=measurement, facts=merge_facts([o.facts for o in outs]), flags=flags,
                      timestamps=outs[0].timestamps)
    windows = [r.window for r in runs]
    window = (windows[0][0], windows[-1][1]) if all(windows) else None
    merged = dataclasses.replace(runs[0], outcome=outcome, window=window, end=last.end)
    return merged, _merge_collections(collections)


def _merge_collections(collections: list):
    """The collectors' view of single-repeat workers (see :func:`merge_repeats`)."""
    if not collections or collections[0] is None:
        return None
    from .collectors import CaseCollection

    first = collections[0]
    energy = first.energy
    es = [c.energy for c in collections]
    if energy is not None and all(e is not None and e.energy_source == energy.energy_source for e in es):
        cross = [e.energy_j_power_integrated for e in es]
        energy = energy.model_copy(update={
            "energy_j": sum(e.energy_j for e in es),
            "energy_window_s": sum(e.energy_window_s for e in es),
            "energy_j_power_integrated": sum(cross) if all(x is not None for x in cross) else None,
        })
    elif energy is not None:
        energy = None  # a repeat without energy (or from another source): no honest total
    flags = tuple(dict.fromkeys(f for c in collections for f in c.flags))
    return CaseCollection(first.collectors, energy, flags)


# ------------------------------------------------------------------------------ helpers
def default_out_path(suite: LoadedSuite, out_dir: str | Path, hostname: str, run_id: str,
                     node: int | None = None) -> Path:
    """``<suite>-<date>-<time>-<host>[-node<R>]-<run id>.json`` inside ``out_dir``: the
    name is reduced to safe characters (a hostile suite name cannot leave ``out_dir`` or
    reach a terminal), and the run id keeps two runs started in the same second apart
    (two nodes of a multi-node run writing to one shared folder included)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = safe_filename_part(suite.spec.suite.name)
    host = safe_filename_part(hostname, fallback="host")
    part = f"-node{node}" if node is not None else ""
    return Path(out_dir) / f"{name}-{stamp}-{host}{part}-{run_id[:8]}.json"

