"""``hwbench ab``: both sides of a comparison in one job, each from its own worker server.

A **side** is a long-lived server process, ``<python> -m hwbench.ab``, started with the
side's interpreter (the base commit's or the pull request's virtualenv) and environment
variables. It loads the suite with its own hwbench, starts its own forkserver, and runs
what the controller (:func:`run_ab`) asks, one repeat of one case at a time, through
the runner's worker path (:meth:`hwbench.runner.Runner._run_worker`: a fresh fork of
the forkserver per repeat, exactly as ``hwbench run`` runs each repeat with
``repeats >= 3``). The controller interleaves the two sides' repeats of each case in
ABBA order (A = base): A B B A A B B A ... Each side writes its own results file (a
normal :class:`~hwbench.records.RunRecord` with ``ab`` saying which side, its Python,
its variables and when each repeat ran), saved after every case.

Messages are typed JSON lines (pydantic models below): requests on the side's stdin,
replies on its stdout (the server moves anything else printed there to stderr first).
A side answers every request with the reply of its kind or a :class:`Failure`.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import UserError

# Both sides and the controller must speak the same protocol: a side whose hwbench
# speaks another is refused before anything runs.
PROTOCOL = 1
HELLO_TIMEOUT_S = 600.0  # a side's start: Python, torch and the forkserver, on a busy machine
REPLY_MARGIN_S = 120.0  # beyond the suite's timeout_s for one repeat


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- requests
class Load(_Msg):
    op: Literal["load"] = "load"
    protocol: int
    suite: str
    filters: list[str] = []


class Begin(_Msg):
    op: Literal["begin"] = "begin"
    side: Literal["base", "new"]
    out_dir: str
    job_id: str
    python: str
    env: dict[str, str] = {}
    pairs: int


class Repeat(_Msg):
    op: Literal["repeat"] = "repeat"
    case_id: str
    pair: int
    slot: int


class FinishCase(_Msg):
    op: Literal["finish_case"] = "finish_case"
    case_id: str
    reason: str = ""  # why it did not run on this side, where it did not


class Close(_Msg):
    op: Literal["close"] = "close"
    status: Literal["complete", "interrupted"]


REQUEST = TypeAdapter(Annotated[Union[Load, Begin, Repeat, FinishCase, Close], Field(discriminator="op")])


# ---------------------------------------------------------------- replies
class PlannedCase(_Msg):
    case_id: str
    skip_reason: str | None = None


class Hello(_Msg):
    kind: Literal["hello"] = "hello"
    protocol: int
    hwbench_version: str
    python_version: str
    cases: list[PlannedCase]
    timeout_s: float


class Begun(_Msg):
    kind: Literal["begun"] = "begun"
    path: str
    run_id: str


class RepeatDone(_Msg):
    kind: Literal["repeat"] = "repeat"
    case_id: str
    pair: int
    status: str
    reason: str = ""
    median_s: float | None = None


class Saved(_Msg):
    kind: Literal["saved"] = "saved"
    case_id: str
    status: str
    reason: str = ""


class Closed(_Msg):
    kind: Literal["closed"] = "closed"
    path: str
    status: str


class Failure(_Msg):
    kind: Literal["error"] = "error"
    message: str
    user: bool = False  # a user error (suite, output folder) rather than a bug


REPLY = TypeAdapter(Annotated[Union[Hello, Begun, RepeatDone, Saved, Closed, Failure], Field(discriminator="kind")])


# ================================================================ the side server
class _Server:
    """What one side holds between requests: the suite, its plan, the runner (worker
    path, collectors), the record being written and the repeats of the running case."""

    def __init__(self) -> None:
        self.suite: Any = None
        self.planned: dict[str, Any] = {}
        self.filters: list[str] = []
        self.start_s: float | None = None
        self.runner: Any = None
        self.record: Any = None
        self.runs: dict[str, list] = {}
        self._lock: Any = None

    def handle(self, req) -> _Msg:
        return {"load": self.load, "begin": self.begin, "repeat": self.repeat, "finish_case": self.finish_case,
                "close": self.close}[req.op](req)

    def load(self, req: Load) -> _Msg:
        from . import launch, planning
        from .version import __version__
        from .spec import load_suite

        if req.protocol != PROTOCOL:
            return Failure(message=f"this side's hwbench {__version__} speaks A/B protocol {PROTOCOL}, "
                                   f"the controller {req.protocol}: install the same hwbench release on both sides",
                           user=True)
        self.suite = load_suite(req.suite)
        self.filters = list(req.filters)
        self.planned = {p.case.case_id: p for p in planning.plan(self.suite, self.filters)}
        self.start_s = launch.start()
        import platform

        cases = [PlannedCase(case_id=cid, skip_reason=p.skip_reason) for cid, p in self.planned.items()]
        return Hello(protocol=PROTOCOL, hwbench_version=__version__, python_version=platform.python_version(),
                     cases=cases, timeout_s=self.suite.spec.settings.timeout_s)

    def begin(self, req: Begin) -> _Msg:
        import contextlib

        from . import env as envmod
        from . import launch, runner
        from .collectors import CollectorSet
        from .probe.profile import find_for_run
        from .records import ABSide, RunRecord, Segment, SuiteRef
        from .results import locked

        s, settings = self.suite, self.suite.spec.settings
        environment = envmod.fingerprint()
        run_id = uuid.uuid4().hex[:12]
        path = runner.default_out_path(s, req.out_dir, environment["hostname"], run_id)
        path = path.with_name(path.name.replace(f"-{run_id[:8]}.json", f"-{req.side}-{run_id[:8]}.json"))
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(locked(path))
        collectors = CollectorSet.for_suite(settings)
        idle = None
        if collectors is not None:
            collectors.start()
            self._lock.callback(collectors.stop)
            if settings.idle_baseline_s > 0:
                idle = collectors.measure_idle(settings.idle_baseline_s)
        segment = Segment(index=0, started=runner.now_iso(), environment=environment, filters=self.filters,
                          idle_baseline=idle, collectors=collectors.info() if collectors is not None else None,
                          worker_server_start_s=self.start_s, machine_profile=find_for_run(path, environment))
        ab = ABSide(job_id=req.job_id, side=req.side, python=req.python, env=req.env, pairs=req.pairs)
        # the resolved suite says what this file holds: --pairs repeats of each case, each
        # in its own worker (the suite's own `repeats` is not used by ab)
        resolved = {**s.resolved, "settings": {**s.resolved.get("settings", {}), "repeats": req.pairs}}
        self.record = RunRecord(run_id=run_id, created=runner.now_iso(), status="running",
                                suite=SuiteRef(name=s.spec.suite.name, path=str(s.path), hash=s.suite_hash,
                                               resolved=resolved), segments=[segment], ab=ab)
        self.runner = runner.Runner(s, path, collectors=collectors,
                                    fault=launch.parse_fault(os.environ.get("HWBENCH_INJECT_FAULT")))
        self.record = self.runner._flush(self.record)
        return Begun(path=str(path), run_id=run_id)

    def repeat(self, req: Repeat) -> _Msg:
        import statistics

        from .records import ABRepeat

        p = self.planned[req.case_id]
        settings = self.suite.spec.settings
        pairs = self.record.ab.pairs
        # as Runner._run_one runs each process-isolated repeat: one repeat per worker,
        # the energy window all of them must reach shared among them
        one = settings.model_copy(update={"repeats": 1, "min_energy_window_s": settings.min_energy_window_s / pairs})
        t0 = time.time()
        run, collection = self.runner._run_worker(p, one, False)
        t1 = time.time()
        self.runs.setdefault(req.case_id, []).append((run, collection))
        ab = self.record.ab
        rep = ABRepeat(case_id=req.case_id, pair=req.pair, slot=req.slot, started=t0, ended=t1)
        self.record = self.record.model_copy(update={"ab": ab.model_copy(update={"repeats": [*ab.repeats, rep]})})
        median = None
        if run.status == "ok" and run.outcome is not None and run.outcome.measurement is not None:
            times = [t for r in run.outcome.measurement.raw_times_s for t in r]
            median = statistics.median(times) if times else None
        return RepeatDone(case_id=req.case_id, pair=req.pair, status=run.status, reason=run.reason[:2000],
                          median_s=median)

    def finish_case(self, req: FinishCase) -> _Msg:
        from . import launch, merge, runner

        p = self.planned[req.case_id]
        done = self.runs.pop(req.case_id, [])
        if done:
            merged, collection = merge.merge_repeats([r for r, _ in done], [c for _, c in done])
        else:
            merged, collection = launch.CaseRun("skipped", p.skip_reason or req.reason or "not run"), None
        result = merge.assemble(p, merged, collection, 0)
        self.record = self.runner._save(self.record, result)  # appended to the journal
        return Saved(case_id=req.case_id, status=result.status, reason=result.reason[:2000])

    def close(self, req: Close) -> _Msg:
        if self.record is None:
            return Closed(path="", status="")
        self.record = self.runner._flush(self.record.model_copy(update={"status": req.status}))
        if self._lock is not None:
            self._lock.close()
        return Closed(path=str(self.runner.out_path), status=req.status)


def serve() -> None:
    """The side server's loop: one request per line on stdin, one reply per line on
    the protocol stream (the original stdout; fd 1 is moved to stderr so that nothing
    else, a worker's print included, can write into the protocol). Ends at ``close``
    or end of input (the controller went away: the file is marked interrupted)."""
    import traceback

    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from . import launch

    launch.prestart()  # the forkserver imports torch while the controller sends the suite
    server = _Server()

    def send(msg: _Msg) -> None:
        proto.write(msg.model_dump_json() + "\n")
        proto.flush()

    for line in sys.stdin:
        try:
            req = REQUEST.validate_json(line)
        except ValidationError as e:
            send(Failure(message=f"not a request of A/B protocol {PROTOCOL}: {str(e).splitlines()[0]}"))
            return
        try:
            reply = server.handle(req)
        except UserError as e:
            reply = Failure(message=str(e), user=True)
        except Exception as e:  # noqa: BLE001 - a bug: its traceback goes to the side's log
            traceback.print_exc()
            reply = Failure(message=f"{type(e).__name__}: {e}"[:2000])
        send(reply)
        if isinstance(req, Close) or isinstance(reply, Failure):
            return
    if server.record is not None:
        server.close(Close(status="interrupted"))


# ================================================================ the controller
class SideDied(Exception):
    """A side server ended, hung or answered with a failure; ``str()`` says which and why."""

    def __init__(self, message: str, user: bool = False):
        super().__init__(message)
        self.user = user


@dataclass(frozen=True)
class SideSpec:
    """How to start one side: ``name`` base / new, its interpreter and the environment
    variables set for it (on top of the controller's environment)."""

    name: str
    python: str
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{self.python}" + (f" {extra}" if extra else "")


class Side:
    """A running side server, as the controller sees it."""

    def __init__(self, spec: SideSpec, log_dir: Path):
        import subprocess

        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, **spec.env}
        # its own session: a Ctrl-C at the terminal reaches the controller, which closes the sides
        try:
            self.proc = subprocess.Popen([spec.python, "-m", "hwbench.ab"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True)
        except OSError as e:
            self._log.close()
            raise UserError(f"--{spec.name}-python {spec.python}: cannot start: {e.strerror or e}") from None
        self._buf = b""
        self.dead: str | None = None

    def ask(self, request: _Msg, timeout_s: float) -> _Msg:
        """Send ``request`` and return the reply; SideDied if the server is gone, hangs
        past ``timeout_s`` or answers with a Failure."""
        if self.dead:
            raise SideDied(self.dead)
        try:
            self.proc.stdin.write((request.model_dump_json() + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died("") from None
        line = self._readline(timeout_s)
        try:
            reply = REPLY.validate_json(line)
        except ValidationError:
            raise self._died(f"an answer outside A/B protocol {PROTOCOL}: {line[:120]!r}") from None
        if isinstance(reply, Failure):
            self.dead = f"{self.spec.name} side: {reply.message}"
            raise SideDied(self.dead, user=reply.user)
        return reply

    def _readline(self, timeout_s: float) -> bytes:
        import select

        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise self._died(f"gave no answer within {timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died("")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _died(self, what: str) -> SideDied:
        import signal

        try:
            code = self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - still running: kill it
            self.kill()
            code = self.proc.returncode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with code {code}")
        self.dead = f"{self.spec.name} side server ({self.spec.python}) {what + '; ' if what else ''}{how}"
        tail = self.log_tail()
        if tail:
            self.dead += f": {tail}"
        return SideDied(self.dead)

    def log_tail(self) -> str:
        """The last line of the side's stderr (usually the exception that ended it)."""
        try:
            self._log.flush()
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip()[:300] if lines else ""

    def kill(self) -> None:
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its forkserver and workers too
            except OSError:
                self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self, status: str) -> None:
        """Ask the server to mark its file ``status`` and end; kill it (its forkserver and
        worker too) if it does not answer in time -- after an interruption it may be in
        the middle of a repeat: its file then keeps the cases saved before."""
        if not self.dead and self.proc.poll() is None:
            deadline = time.monotonic() + (60.0 if status == "complete" else 10.0)
            try:
                reply = self.ask(Close(status=status), timeout_s=max(0.1, deadline - time.monotonic()))
                while not isinstance(reply, Closed):  # the answer to a request the interruption cut short
                    line = self._readline(max(0.1, deadline - time.monotonic()))
                    reply = REPLY.validate_json(line)
            except (SideDied, ValidationError):
                pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.kill()
        self._log.close()


@dataclass
class ABJob:
    """What :func:`run_ab` did: the cases in order, each side's results file, the
    slots each repeat had, and why a side stopped (None: it did not)."""

    job_id: str
    pairs: int
    cases: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # side -> case -> (status, reason)
    planned: dict[str, dict[str, str | None]] = field(default_factory=dict)  # side -> case -> skip reason
    died: dict[str, str] = field(default_factory=dict)  # side -> why it stopped
    versions: dict[str, str] = field(default_factory=dict)  # side -> "hwbench X, Python Y"
    interrupted: str | None = None


def run_ab(suite_path: str, specs: tuple[SideSpec, SideSpec], *, pairs: int, out_dir: str | Path,
           filters: list[str] = (), progress: Callable[[str], None] = lambda s: None) -> ABJob:
    """Start both sides, run every case's repeats in ABBA order, save and close. Raises
    UserError where a side cannot start (its interpreter, its hwbench, the suite, the
    output folder) before any case runs; a side that dies later fails its case and
    ends the job (the cases after it are not compared)."""
    import tempfile

    job = ABJob(uuid.uuid4().hex[:12], pairs)
    status = "interrupted"
    with tempfile.TemporaryDirectory(prefix="hwbench-ab-") as tmp:
        sides: dict[str, Side] = {}
        try:
            for spec in specs:
                sides[spec.name] = Side(spec, Path(tmp))
            timeout_s = _start(sides, job, suite_path, list(filters), out_dir)
            progress(f"sides ready: base {job.paths['base']}, new {job.paths['new']}")
            _run_cases(sides, job, timeout_s + REPLY_MARGIN_S, progress)
            # a side that stopped left cases unrun: the other side's run is not complete either
            status = "interrupted" if job.died else "complete"
        except KeyboardInterrupt as e:
            job.interrupted = str(e) or "SIGINT"
            status = "interrupted"
        finally:
            for side in sides.values():
                side.close(status)
    return job


def _start(sides: dict[str, Side], job: ABJob, suite_path: str, filters: list[str], out_dir) -> float:
    """Load the suite on both sides (they start in parallel), then begin them one after
    the other (each measures its idle baseline while the other waits)."""
    timeout_s = 0.0
    for name, side in sides.items():
        try:
            hello = side.ask(Load(protocol=PROTOCOL, suite=suite_path, filters=filters), HELLO_TIMEOUT_S)
        except SideDied as e:
            raise UserError(f"--{name}-python: the {name} side cannot start: {e}") from None
        job.planned[name] = {c.case_id: c.skip_reason for c in hello.cases}
        job.versions[name] = f"hwbench {hello.hwbench_version}, Python {hello.python_version}"
        timeout_s = max(timeout_s, hello.timeout_s)
    job.cases = list(dict.fromkeys([*job.planned["base"], *job.planned["new"]]))
    both = [c for c in job.cases if all(job.planned[n].get(c, "absent") is None for n in ("base", "new"))]
    if not both:
        why = "; ".join(f"{n}: " + (", ".join(sorted({r or "?" for r in job.planned[n].values()})) or "no cases")
                        for n in ("base", "new"))
        raise UserError(f"{suite_path}: no case can run on both sides here ({why})"[:600])
    for name, side in sides.items():
        try:
            begun = side.ask(Begin(side=name, out_dir=str(out_dir), job_id=job.job_id, python=side.spec.python,
                                   env=side.spec.env, pairs=job.pairs), HELLO_TIMEOUT_S)
        except SideDied as e:
            raise UserError(f"the {name} side cannot start: {e}") from None
        job.paths[name] = begun.path
    return timeout_s


def _run_cases(sides: dict[str, Side], job: ABJob, timeout_s: float, progress: Callable[[str], None]) -> None:
    slot = 0
    for i, cid in enumerate(job.cases):
        if job.died:  # a side stopped during an earlier case: nothing left can be paired
            why = "not run: " + "; ".join(f"the {n} side server stopped earlier" for n in job.died)
            for name in ("base", "new"):
                if cid in job.planned[name]:
                    job.statuses.setdefault(name, {})[cid] = ("failed", why)
            continue
        runnable = [n for n in ("base", "new") if cid in job.planned[n] and job.planned[n][cid] is None]
        if len(runnable) == 2:
            slot = _pairs(sides, job, cid, slot, timeout_s)
        for name in ("base", "new"):
            if cid not in job.planned[name] or cid in job.statuses.get(name, {}):
                continue
            other = "new" if name == "base" else "base"
            why = (f"not run: the {other} side's suite has no such case" if cid not in job.planned[other] else
                   f"not run: the {other} side skips it ({job.planned[other][cid]})" if job.planned[other][cid]
                   else "")
            try:
                saved = sides[name].ask(FinishCase(case_id=cid, reason=why), timeout_s)
                job.statuses.setdefault(name, {})[cid] = (saved.status, saved.reason)
            except SideDied as e:
                job.died[name] = str(e)
                job.statuses.setdefault(name, {})[cid] = ("failed", str(e))
        progress(f"[{i + 1}/{len(job.cases)}] {cid}: " + ", ".join(
            f"{n} {job.statuses.get(n, {}).get(cid, ('-',))[0]}" for n in ("base", "new")))


def _pairs(sides: dict[str, Side], job: ABJob, cid: str, slot: int, timeout_s: float) -> int:
    """Run case ``cid``'s repeats in ABBA order; returns the next slot. A repeat that is
    not ok ends the case after its pair (each side then has as many repeats); a side
    that dies ends it at once, failing the case on that side."""
    stop_after = None
    for pair, name in abba(job.pairs):
        if stop_after is not None and pair > stop_after:
            break
        try:
            r = sides[name].ask(Repeat(case_id=cid, pair=pair, slot=slot), timeout_s)
        except SideDied as e:
            job.died[name] = str(e)
            job.statuses.setdefault(name, {})[cid] = ("failed", str(e))
            break
        slot += 1
        if r.status != "ok" and stop_after is None:
            stop_after = pair
    return slot


def abba(pairs: int) -> list[tuple[int, str]]:
    """The order of one case's repeats: (pair, side) with side "base" (A) or "new" (B),
    pair k in order AB for even k and BA for odd k: A B B A A B B A ..."""
    out: list[tuple[int, str]] = []
    for k in range(pairs):
        out += [(k, "base"), (k, "new")] if k % 2 == 0 else [(k, "new"), (k, "base")]
    return out


def repeat_medians(path: str | Path) -> dict[str, tuple[str, str, tuple[float, ...]]]:
    """From one side's results file: case_id -> (status, reason, median of each repeat,
    seconds, in repeat order)."""
    import statistics

    from .results import read_record

    rec = read_record(path)
    out = {}
    for c in rec.cases:
        meds = tuple(statistics.median(r) for r in c.measurement.raw_times_s if r) if c.measurement else ()
        out[c.case_id] = (c.status, c.reason, meds)
    return out


if __name__ == "__main__":
    serve()
