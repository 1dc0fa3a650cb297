"""Scheduling a run: run the planned cases (:mod:`hwbench.planning`) one by one through
the launcher (:mod:`hwbench.launch`), have each result assembled (:mod:`hwbench.merge`),
and save every case as it finishes. Signals (Ctrl-C, SIGTERM) stop the run between
cases or, past a grace period, abandon the running one.

The run record is immutable: after each case the runner builds a new
:class:`~hwbench.records.RunRecord` in memory and appends the case, once, to the run's
journal (:mod:`hwbench.journal`): the results file is written whole only as a segment
starts and as the run ends (compaction), so the bytes a run writes grow linearly with
its cases, and the file with its journal is complete and valid at every instant.
"""

from __future__ import annotations

import contextlib
import fnmatch
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import devices, launch, serving
from .errors import ResultsError
from .journal import JournalWriter
from .merge import assemble, merge_ranks, merge_repeats
from .planning import FINISHED, Planned, auto_expansion, pending, usable_cores
from .records import PROCESS_ISOLATED_REPEATS, CaseResult, RunRecord
from .results import safe_filename_part, write_atomic
from .case import Case
from .spec import LoadedSuite

# ----------------------------------------------------------------------------- results
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
    journal: JournalWriter | None = None  # while run() goes on

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
        """Write ``record`` whole (a segment's start, compaction); then open a fresh
        journal (a running record) or remove the journal (a finished one)."""
        record = record.model_copy(update={"updated": now_iso()})
        try:
            if self.journal is not None and record.status != "running":
                self.journal.status(record.status)  # kept even if the whole write fails
            write_atomic(self.out_path, record)
            if self.journal is not None:
                self.journal.remove()
                self.journal = None
            if record.status == "running":
                self.journal = JournalWriter(self.out_path, record)
        except OSError as e:
            raise ResultsError(f"{self.out_path}: cannot write the results file: {e.strerror or e}") from None
        return record

    def _save(self, record: RunRecord, result: CaseResult) -> RunRecord:
        """``record`` with ``result``; the result appended to the journal."""
        try:
            self.journal.case(result)
        except OSError as e:
            raise ResultsError(f"{self.out_path}: cannot write the results file: {e.strerror or e}") from None
        return with_case(record, result).model_copy(update={"updated": now_iso()})

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
                    result = serving.keep_logs(assemble(p, run, collection, self.segment), self.out_path)
                    record = self._save(record, result)
                    self.reporter.case_done(result)
                    continue
                result = assemble(p, run, None, self.segment)
                record = self._save(record, result)
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
            if self.journal is not None:  # not compacted (a write error): readers merge it
                self.journal.close()
                self.journal = None
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
            try:
                self.journal.batch_limit(p.case.case_id, info)
            except OSError as e:
                raise ResultsError(f"{self.out_path}: cannot write the results file: {e.strerror or e}") from None
            record = record.model_copy(update={"batch_limits": {**record.batch_limits, p.case.case_id: info}})
        return record, auto_expansion(p, info.batch_limit)

    def _run_one(self, p: Planned, probe: bool = False):
        """Run case ``p`` (or its batch-limit search) and collect its readings. With
        ``repeats >= PROCESS_ISOLATED_REPEATS`` every repeat runs in its own fresh worker
        (:func:`hwbench.merge.merge_repeats` makes one result of them), so the repeats vary by
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
            memory_capped_gb=settings.memory_limit_gb if limit and devices.of(p.device or "cpu").caps_address_space else None,
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
        CPU ranks share the host's cores: each gets ``threads`` or an equal share. The
        ranks' reports are joined into one outcome (merge.merge_ranks)."""
        cs = self.collectors
        kind = devices.kind_of(p.device or "cpu")
        acc = devices.KINDS.get(kind)
        threads = p.case.threads
        here = p.case.world_size // (self.coordinator.nodes.nnodes if self.coordinator is not None else 1)
        if threads is None and acc.host_threads():
            threads = max(1, usable_cores() // here)
        limit = int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb else None
        run = self.launcher.run_group(
            p.case, settings, device_kind=kind, world_size=p.case.world_size, threads=threads,
            memory_limit_bytes=limit, fault=self.group_fault_for(p.case), timeout_s=settings.timeout_s,
            on_start=(cs.case_begin if cs is not None else (lambda pid: None)),
            should_abandon=self.should_abandon, nodes=self._nodes_job(p, settings),
        )
        run = merge_ranks(run)
        collection = None
        if cs is not None:
            # on indexed kinds every local rank has its own device (<kind>:<local rank>): energy is their sum
            used = tuple(f"{kind}:{i}" for i in range(here)) if acc.indexed else None
            collection = cs.case_end(run.window if run.status == "ok" else None, p.device, devices=used)
        return run, collection

    def _nodes_job(self, p: Planned, settings) -> dict | None:
        """What a multi-node case's agent needs to join the others (job.json ``nodes``)."""
        if self.coordinator is None:
            return None
        n = self.coordinator.nodes
        return {"nnodes": n.nnodes, "node_rank": n.node_rank, "endpoint": n.endpoint,
                "rdzv_id": n.rdzv_id(p.case.case_id), "join_timeout_s": max(30.0, settings.timeout_s)}


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

