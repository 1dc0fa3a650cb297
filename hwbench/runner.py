"""Plans a run, launches one worker process per case, enforces timeouts, writes results
incrementally and atomically, and resumes interrupted runs.

Process model: a ``multiprocessing`` forkserver preloaded with torch and
:mod:`hwbench.worker`. Every case is a fresh fork of that server: a crash, an OOM or a
hang stays inside it, and the per-case cost is a fork rather than a torch import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import multiprocessing as mp
import multiprocessing.forkserver
import os
import signal
import statistics
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from . import backends, devices, env as envmod
from .collectors import timing_flags
from .errors import ResultsError, UserError
from .results import FORMAT, SCHEMA_VERSION, read_record, write_atomic
from .spec import Case, LoadedSuite

FINISHED = ("ok", "skipped")  # kept on resume; failed / oom / timeout are run again


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Planned:
    case: Case
    skip_reason: str | None
    device_name: str | None  # the device's model name, e.g. "NVIDIA H100 80GB HBM3"
    device: str | None = None  # the resolved device, e.g. "cuda:0" for "cuda" or "auto"


def parse_filter(exprs: Iterable[str]) -> list:
    """``--filter`` expressions -> predicates on a Case; a case runs if any matches.
    ``field=glob[,field=glob...]`` matches fields (all must match); anything else is a
    glob on ``case_id`` (a plain word matches as a substring)."""
    preds = []
    fields = set(Case.__dataclass_fields__) | {"family", "size"}
    for expr in exprs:
        if "=" in expr:
            terms = []
            for term in expr.split(","):
                key, _, pat = term.partition("=")
                key = key.strip()
                if key not in fields:
                    raise UserError(f"--filter {expr!r}: unknown field {key!r}; fields: {', '.join(sorted(fields))}")
                terms.append((key, pat.strip()))

            def pred(c: Case, terms=terms) -> bool:
                vals = {**c.to_dict(), "family": c.model.split(":")[0], "size": c.model.split(":")[1]}
                return all(fnmatch.fnmatchcase(str(vals[k]), p) for k, p in terms)

        else:
            pat = expr if any(ch in expr for ch in "*?[") else f"*{expr}*"

            def pred(c: Case, pat=pat) -> bool:
                return fnmatch.fnmatchcase(c.case_id, pat)

        preds.append(pred)
    return preds


def plan(suite: LoadedSuite, filters: Iterable[str] = ()) -> list[Planned]:
    preds = parse_filter(filters)
    present = devices.present()
    out = []
    for case in suite.cases:
        if preds and not any(p(case) for p in preds):
            continue
        dev = backends.resolve_device(case.device, present)
        out.append(Planned(case, backends.unsupported_reason(case, dev), dev.model if dev else None, dev.name if dev else None))
    if preds and not out:
        raise UserError(f"{suite.path}: --filter matched none of the suite's {len(suite.cases)} cases")
    return out


# ------------------------------------------------------------------------- the process
_CTX: Any = None


def _noop() -> None:
    pass


def prestart_workers() -> None:
    """Launch the forkserver without waiting: its torch import then overlaps with the
    runner's own start-up."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["hwbench.worker"])
    multiprocessing.forkserver.ensure_running()


def start_workers() -> float:
    """Start the forkserver (it imports torch once) and wait until it forks a first
    worker, so no case is charged for it. Returns the seconds this took."""
    global _CTX
    t0 = time.monotonic()
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        prestart_workers()
        with _without_main():
            p = ctx.Process(target=_noop, daemon=True)
            p.start()
        p.join()
        _CTX = ctx
    return time.monotonic() - t0


def _context():
    start_workers()
    return _CTX


def _oom_kills() -> int | None:
    """The cgroup's oom_kill count (cgroup v2), to tell the OOM killer from other SIGKILLs."""
    try:
        with open("/sys/fs/cgroup/memory.events", encoding="ascii") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def _without_main():
    """multiprocessing re-runs the parent's ``__main__`` file in every child (a console
    script, pytest, a notebook...). Workers need nothing from it, and re-running it per
    case would cost time and could have side effects, so hide it while starting one."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


class Interrupted(Exception):
    """The user pressed Ctrl-C twice: stop now."""


@dataclass
class CaseRun:
    """What the runner observed about one worker."""

    status: str
    reason: str = ""
    outcome: Any = None
    window: tuple[float, float] | None = None
    launch: float = 0.0
    end: float = 0.0


class Reporter:
    """Receives progress; the CLI's shows a progress bar. This one stays silent."""

    def start(self, total: int, done: int) -> None: ...
    def grow(self, n: int) -> None: ...
    def case_started(self, case: Case) -> None: ...
    def case_done(self, result: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Runner:
    suite: LoadedSuite
    out_path: Path
    reporter: Reporter = field(default_factory=Reporter)
    collectors: Any = None  # a CollectorSet (hwbench.collectors), or None

    def __post_init__(self):
        self._stop_requested = False
        # Fault injection for the tests and the reliability script:
        # HWBENCH_INJECT_FAULT="<glob on case_id>=<raise|hang|segfault|oom|exit>"
        self._fault = os.environ.get("HWBENCH_INJECT_FAULT", "").rpartition("=")

    def fault_for(self, case: Case) -> str | None:
        pattern, _, kind = self._fault
        return kind if pattern and fnmatch.fnmatchcase(case.case_id, pattern) else None

    # ---- record management
    def new_record(self, environment: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "run_id": uuid.uuid4().hex[:12],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "updated": None,
            "status": "running",
            "environment": environment,
            "suite": {
                "name": self.suite.spec.suite.name,
                "path": self.suite.path,
                "hash": self.suite.suite_hash,
                "resolved": self.suite.resolved,
            },
            "cases": [],
        }

    def _flush(self, record: dict[str, Any]) -> None:
        record["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            write_atomic(self.out_path, record)
        except OSError as e:
            raise ResultsError(f"{self.out_path}: cannot write the results file: {e.strerror or e}") from None

    # ---- signals
    def _on_sigint(self, signum, frame):
        if self._stop_requested:
            raise Interrupted()
        self._stop_requested = True
        self.reporter.message(
            "Ctrl-C: finishing the current case, then stopping (press Ctrl-C again to abandon it now)."
        )

    # ---- the run
    def run(self, planned: list[Planned], record: dict[str, Any]) -> dict[str, Any]:
        """Run every planned case not already finished in ``record``; flush after each."""
        done_ids = {c["case_id"] for c in record["cases"]}
        todo = [p for p in planned if p.case.case_id not in done_ids]
        if any(p.skip_reason is None for p in todo):
            record.setdefault("overheads", {})["worker_server_start_s"] = start_workers()
        self.reporter.start(len(planned), len(planned) - len(todo))
        record["status"] = "running"
        self._flush(record)  # fails early (one line) where the file cannot be written
        old = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None
        planned_ids = {p.case.case_id for p in planned}
        queue = deque(todo)
        try:
            while queue:
                p = queue.popleft()
                if self._stop_requested:
                    break
                self.reporter.case_started(p.case)
                if p.case.auto_batch and not p.skip_reason:
                    expanded = self._expand_auto(p, record)
                    if isinstance(expanded, list):
                        new = [e for e in expanded if e.case.case_id not in done_ids | planned_ids]
                        queue.extendleft(reversed(new))
                        self.reporter.grow(len(new) - 1)
                        self.reporter.case_done(None)
                        continue
                    result = self._result(p, expanded)  # the failed search
                elif p.skip_reason:
                    result = self._result(p, CaseRun("skipped", p.skip_reason))
                else:
                    result = self._result(p, self._run_one(p))
                record["cases"].append(result)
                self._flush(record)
                self.reporter.case_done(result)
            record["status"] = "interrupted" if self._stop_requested else "complete"
        except Interrupted:
            record["status"] = "interrupted"
        finally:
            if record["status"] == "running":  # an unexpected error: keep what we have
                record["status"] = "interrupted"
            self._flush(record)
            self.reporter.stop()
            if old is not None:
                signal.signal(signal.SIGINT, old)
        return record

    def _expand_auto(self, p: Planned, record: dict[str, Any]) -> list[Planned] | CaseRun:
        """batch_sizes = ["auto"]: find (or, on resume, reuse) the batch limit, then
        return cases for the powers of two up to it -- or the failed search."""
        limits = record.setdefault("batch_limits", {})
        info = limits.get(p.case.case_id)
        if info is None:
            run = self._run_one(p, probe=True)
            if run.status != "ok":
                run.reason = f"batch limit search: {run.reason}"
                return run
            info = limits[p.case.case_id] = run.outcome.metrics
            self._flush(record)
        sizes = [2**k for k in range(info["batch_limit"].bit_length()) if 2**k <= info["batch_limit"]]
        return [Planned(dataclasses.replace(p.case, batch_size=b), None, p.device_name, p.device) for b in sizes]

    def _run_one(self, p: Planned, probe: bool = False) -> CaseRun:
        case = p.case
        ctx = _context()
        settings = self.suite.spec.settings
        recv, send = ctx.Pipe(duplex=False)
        life_r, life_w = ctx.Pipe(duplex=False)
        from .worker import Outcome, Progress, Target, probe_batch, run_case

        limit = int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb else None
        oom_before = _oom_kills()
        launch = time.monotonic()
        proc = ctx.Process(
            target=probe_batch if probe else run_case,
            args=(case, settings, Target(p.device, p.device_name or ""), send, life_r, launch, limit, self.fault_for(case)),
            name=f"hwbench-worker {case.case_id}",
            daemon=True,
        )
        with _without_main():
            proc.start()
        send.close()
        life_r.close()
        run = CaseRun("failed", launch=launch)
        start = end = None
        deadline = launch + settings.timeout_s
        if self.collectors is not None and not probe:
            self.collectors.case_begin(proc.pid)
        try:
            while True:
                if recv.poll(0.05):
                    try:
                        msg = recv.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:
                        run = self._died(proc, oom_before)
                        break
                    if isinstance(msg, Progress):
                        if msg.event == "window_start":
                            start = msg.t
                        elif msg.event == "window_end":
                            end = msg.t
                        if self.collectors is not None and not probe:
                            self.collectors.mark(msg.event, msg.t)
                        continue
                    if not isinstance(msg, Outcome):
                        raise TypeError(f"unexpected message from a worker: {type(msg).__name__}")
                    run.status, run.reason, run.outcome = msg.status, msg.reason, msg
                    break
                if time.monotonic() > deadline:
                    _kill(proc)
                    run = CaseRun("timeout", f"no result within timeout_s = {settings.timeout_s:g} s; worker killed")
                    break
            proc.join(timeout=5)  # it has sent its result and is exiting
        finally:
            _kill(proc)  # at once where we got here by an exception (a second Ctrl-C)
            life_w.close()
            recv.close()
        run.launch, run.end = launch, time.monotonic()
        if start is not None and end is not None:
            run.window = (start, end)
        return run

    def _died(self, proc, oom_before: int | None) -> CaseRun:
        proc.join(timeout=5)
        code = proc.exitcode
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            oom_after = _oom_kills()
            if -code == signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before:
                return CaseRun("oom", "worker killed by the out-of-memory killer (SIGKILL, cgroup oom_kill rose)")
            return CaseRun("failed", f"worker killed by signal {sig}")
        return CaseRun("failed", f"worker exited with code {code} before reporting a result")

    def _result(self, p: Planned, run: CaseRun) -> dict[str, Any]:
        case = p.case
        res: dict[str, Any] = {
            "case_id": case.case_id,
            "case": case.to_dict(),
            "device_name": p.device_name,
            "device_resolved": p.device,
            "status": run.status,
            "reason": run.reason,
            "metrics": {},
            "raw_times_ms": [],
            "timing": {},
            "collectors": {},
            "energy": {},
            "flags": [],
        }
        o = run.outcome
        if o is not None:
            res["metrics"] = o.metrics
            res["raw_times_ms"] = [[t * 1e3 for t in r] for r in o.raw_times_s]
            ts = o.timestamps
            if "first_timed" in ts:
                res["timing"] = {
                    # launch -> first timed iteration: what isolation + setup + warmup cost
                    "fixed_cost_s": ts["first_timed"] - ts["launch"],
                    "launch_s": ts["worker_start"] - ts["launch"],
                    "setup_s": ts["ready"] - ts["worker_start"],
                    "warmup_s": ts["first_timed"] - ts["ready"],
                    "wall_s": run.end - run.launch,
                }
        if run.status != "skipped" and "wall_s" not in res["timing"]:
            res["timing"]["wall_s"] = run.end - run.launch
        if run.status == "ok":
            res["flags"] += timing_flags(res["metrics"], self.suite.spec.settings.noise_threshold)
        if self.collectors is not None and run.status != "skipped":
            got = self.collectors.case_end(run.window, case, res, p.device)
            res["flags"] += got.pop("flags")
            res.update(got)
        return res


def _kill(proc) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=2)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ------------------------------------------------------------------------------ helpers
def default_out_path(suite: LoadedSuite, out_dir: str | Path, hostname: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    host = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in hostname)[:40]
    return Path(out_dir) / f"{suite.spec.suite.name}-{stamp}-{host}.json"


def open_resume(path: str | Path, suite: LoadedSuite, environment: dict[str, Any]) -> dict[str, Any]:
    """Load a results file to resume onto: same machine, same suite content. Drops its
    unfinished cases (failed / oom / timeout) so they run again."""
    rec = read_record(path)
    if envmod.machine_id(rec["environment"]) != envmod.machine_id(environment):
        raise ResultsError(
            f"{path}: cannot resume: the file was written on another machine "
            f"({rec['environment'].get('hostname')}, {rec['environment'].get('cpu_model')})"
        )
    if rec["suite"].get("hash") != suite.suite_hash:
        raise ResultsError(
            f"{path}: cannot resume: suite {suite.path} changed since this run started "
            f"(hash {rec['suite'].get('hash')} in the file, {suite.suite_hash} now)"
        )
    kept, seen = [], set()
    for c in rec["cases"]:
        if c["status"] in FINISHED and c["case_id"] not in seen:
            kept.append(c)
            seen.add(c["case_id"])
    rec["cases"] = kept
    rec["environment"] = environment
    rec.setdefault("resumed", []).append(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return rec


def fixed_cost_summary(record: dict[str, Any]) -> dict[str, float] | None:
    """Median per-case overheads over ok cases, in seconds."""
    t = [c["timing"] for c in record["cases"] if c["status"] == "ok" and "fixed_cost_s" in c.get("timing", {})]
    if not t:
        return None
    return {k: statistics.median(x[k] for x in t) for k in ("fixed_cost_s", "launch_s", "setup_s", "warmup_s")}
