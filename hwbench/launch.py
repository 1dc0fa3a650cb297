"""Worker processes: the forkserver, launching one worker per case, timeouts, and what a
worker's death means (failed, oom, timeout).

Process model: a ``multiprocessing`` forkserver preloaded with torch and
:mod:`hwbench.worker`. Every case is a fresh fork of that server: a crash, an OOM or a
hang stays inside it, and the per-case cost is a fork rather than a torch import.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.forkserver
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

_CTX: Any = None


def _noop() -> None:
    pass


def prestart() -> None:
    """Launch the forkserver without waiting: its torch import then overlaps with the
    runner's own start-up."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["hwbench.worker"])
    multiprocessing.forkserver.ensure_running()


def start() -> float:
    """Start the forkserver (it imports torch once) and wait until it forks a first
    worker, so no case is charged for it. Returns the seconds this took."""
    global _CTX
    t0 = time.monotonic()
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        prestart()
        with _without_main():
            p = ctx.Process(target=_noop, daemon=True)
            p.start()
        p.join()
        _CTX = ctx
    return time.monotonic() - t0


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


# ----------------------------------------------------------------- out of memory
PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")


def _count(path: Path, key: str) -> int | None:
    """The integer after ``key`` in a "key value" file (memory.events, vmstat, ...)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
    except (OSError, ValueError):
        pass
    return None


def oom_counters(pid: int | None, proc: Path = PROC, cgroup: Path = CGROUP) -> dict[str, int]:
    """Every out-of-memory kill counter the kernel offers that covers process ``pid``:
    the system-wide ``oom_kill`` of /proc/vmstat (Linux >= 4.13, any cgroup setup,
    bare metal included), the cgroup v2 ``memory.events`` of the process's own cgroup
    and of the root, and the cgroup v1 ``memory.oom_control``. Read before a worker
    starts and after it dies: a counter that rose while it ran means it was OOM-killed."""
    out: dict[str, int] = {}
    v = _count(proc / "vmstat", "oom_kill")
    if v is not None:
        out["vmstat"] = v
    paths: list[tuple[str, Path]] = [("cgroup2:/", cgroup / "memory.events")]
    if pid is not None:
        try:
            lines = (proc / str(pid) / "cgroup").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            _, ctrl, rel = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
            rel = rel.lstrip("/")
            if ctrl == "" and rel:  # cgroup v2 unified hierarchy
                paths.append((f"cgroup2:/{rel}", cgroup / rel / "memory.events"))
            elif "memory" in ctrl.split(","):  # cgroup v1 memory controller
                paths.append((f"cgroup1:/{rel}", cgroup / "memory" / rel / "memory.oom_control"))
    for name, p in paths:
        v = _count(p, "oom_kill")
        if v is not None:
            out[name] = v
    return out


def classify_death(exitcode: int | None, before: dict[str, int], after: dict[str, int],
                   memory_capped_gb: float | None) -> tuple[str, str]:
    """(status, reason) for a worker that ended without reporting a result.

    * killed by SIGKILL while an out-of-memory counter rose -> ``oom`` (the kernel's
      OOM killer; we never SIGKILL a worker except after a timeout, classified apart);
    * died by SIGSEGV / SIGBUS / SIGABRT under ``memory_limit_gb`` (RLIMIT_AS): native
      code that cannot allocate under the cap dies this way instead of raising -> ``oom``,
      with a reason that says so;
    * any other signal or exit code -> ``failed``.
    """
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode)
        if sig == signal.SIGKILL:
            rose = sorted(k for k, v in after.items() if k in before and v > before[k])
            if rose:
                return "oom", f"worker killed by the out-of-memory killer (SIGKILL; oom_kill rose in {', '.join(rose)})"
        if memory_capped_gb is not None and sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            return "oom", (f"worker died by {sig.name} under memory_limit_gb = {memory_capped_gb:g} "
                           "(RLIMIT_AS): an allocation beyond the cap in native code")
        return "failed", f"worker killed by signal {sig.name}"
    return "failed", f"worker exited with code {exitcode} before reporting a result"


# ----------------------------------------------------------------- one worker
@dataclass
class CaseRun:
    """What the launcher observed about one worker. ``status`` is ok / failed / oom
    (reported by the worker or its death), timeout, or abandoned (stopped on request;
    not a result)."""

    status: str
    reason: str = ""
    outcome: Any = None
    window: tuple[float, float] | None = None
    launch: float = 0.0
    end: float = 0.0
    timestamps: dict[str, float] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # a group's agent and ranks (run_group)
    reports: dict = field(default_factory=dict)  # a group's rank reports by rank (run_group; merge.merge_ranks)


def run_worker(
    entry: Callable, args: tuple, *, name: str, timeout_s: float, memory_capped_gb: float | None,
    on_start: Callable[[int], None] = lambda pid: None,
    on_progress: Callable[[Any], None] = lambda msg: None,
    should_abandon: Callable[[], str | None] = lambda: None,
) -> CaseRun:
    """Fork a worker running ``entry(*args, conn, lifeline, launch_time)``, relay its
    progress marks, and return its outcome or what its death means. The worker is
    killed at ``timeout_s`` (-> timeout) or when ``should_abandon()`` returns a reason
    (-> abandoned)."""
    from .worker import Outcome

    start()
    ctx = _CTX
    recv, send = ctx.Pipe(duplex=False)
    life_r, life_w = ctx.Pipe(duplex=False)
    # workers live in the runner's cgroup (forked from its forkserver): its counters
    # can still be read after the worker's /proc entry is gone
    before = oom_counters(os.getpid())
    launch = time.monotonic()
    proc = ctx.Process(target=entry, args=(*args, send, life_r, launch), name=name, daemon=True)
    with _without_main():
        proc.start()
    send.close()
    life_r.close()
    on_start(proc.pid)
    run = CaseRun("failed", launch=launch)
    start_t = end_t = None
    deadline = launch + timeout_s
    try:
        while True:
            if recv.poll(0.05):
                try:
                    msg = recv.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is None:
                    proc.join(timeout=5)
                    status, reason = classify_death(proc.exitcode, before, oom_counters(os.getpid()), memory_capped_gb)
                    run = CaseRun(status, reason)
                    break
                if isinstance(msg, Outcome):
                    run.status, run.reason, run.outcome = msg.status, msg.reason, msg
                    break
                if getattr(msg, "event", None) == "window_start":
                    start_t = msg.t
                elif getattr(msg, "event", None) == "window_end":
                    end_t = msg.t
                on_progress(msg)
                continue
            if time.monotonic() > deadline:
                kill(proc)
                run = CaseRun("timeout", f"no result within timeout_s = {timeout_s:g} s; worker killed")
                break
            why = should_abandon()
            if why:
                kill(proc)
                run = CaseRun("abandoned", why)
                break
        proc.join(timeout=5)  # it has sent its result and is exiting
    finally:
        kill(proc)  # at once where we got here by an exception
        life_w.close()
        recv.close()
    run.launch, run.end = launch, time.monotonic()
    if start_t is not None and end_t is not None:
        run.window = (start_t, end_t)
    return run


def kill(proc) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=2)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)


# ----------------------------------------------------------------- the seam
@dataclass(frozen=True)
class WorkerJob:
    """One single-process case (or its batch-limit search, ``probe``) as the runner
    asks for it: the case, its settings, where it runs (``device`` "cuda:0" / "cpu"
    and the device's model name), the memory cap in bytes (None: none) and the fault
    to inject (tests)."""

    case: Any
    settings: Any
    device: str | None
    device_name: str
    memory_limit_bytes: int | None
    fault: str | None
    probe: bool = False


class Launcher(Protocol):
    """Where the runner's cases run (the one place process isolation is decided, as
    pyperf's in-process manager stands in for its workers). :class:`ProcessLauncher`
    forks real workers and torchrun groups; tests pass an in-process fake to
    :func:`hwbench.run_suite` to test scheduling without forking torch. The keyword
    arguments are those of :func:`run_worker` / :func:`run_group`."""

    def prestart(self) -> None: ...
    def start(self) -> float: ...
    def run_worker(self, job: WorkerJob, **kw: Any) -> CaseRun: ...
    def run_group(self, case: Any, settings: Any, **kw: Any) -> CaseRun: ...


class ProcessLauncher:
    """The real launcher: a forkserver worker per case, a torchrun group per parallel case."""

    def prestart(self) -> None:
        prestart()

    def start(self) -> float:
        return start()

    def run_worker(self, job: WorkerJob, **kw: Any) -> CaseRun:
        from .worker import Target, probe_batch, run_case

        args = (job.case, job.settings, Target(job.device, job.device_name), job.memory_limit_bytes, job.fault)
        pids: list[int] = []
        on_start = kw.pop("on_start", lambda pid: None)

        def started(pid: int) -> None:
            pids.append(pid)
            on_start(pid)

        try:
            return run_worker(probe_batch if job.probe else run_case, args, on_start=started, **kw)
        finally:
            _remove_scratch(job.case, job.settings, pids)

    def run_group(self, case: Any, settings: Any, **kw: Any) -> CaseRun:
        run = None
        try:
            run = run_group(case, settings, **kw)
            return run
        finally:
            _remove_scratch(case, settings, run.pids if run is not None else [])


def _remove_scratch(case: Any, settings: Any, pids: list[int]) -> None:
    """Remove the scratch folders of a data / checkpoint case's processes that are gone
    (:func:`hwbench.io.scratch.remove_left`): a worker, or a sharded checkpoint group's
    agent and ranks, that had to be killed before its own clean-up ran."""
    from .io import IO_MODES

    if getattr(case, "mode", None) not in IO_MODES:
        return
    from .io.scratch import remove_left

    for pid in pids:
        remove_left(getattr(settings, "checkpoint_dir", None), pid)


# ----------------------------------------------------------------- fault injection
FAULTS = ("raise", "hang", "segfault", "oom", "exit")
_FAULT_RE = re.compile(r"^(?P<glob>.+?)(?:@rank(?P<rank>\d+))?=(?P<kind>[a-z]+)$")


def parse_fault(value: str | None) -> tuple | None:
    """``HWBENCH_INJECT_FAULT="<glob on case_id>[@rank<N>]=<kind>"`` (tests and the
    reliability scripts) -> (glob, kind), or (glob, kind, N) with a rank selector: in a
    parallel case only rank N faults (without one, every rank does; a single-process
    case is rank 0). A value that does not parse is a user error, not silence."""
    from .errors import UserError

    if not value:
        return None
    m = _FAULT_RE.match(value)
    if not m or m["kind"] not in FAULTS:
        raise UserError(
            f"HWBENCH_INJECT_FAULT: expected '<glob on case_id>[@rank<N>]=<{'|'.join(FAULTS)}>', "
            f"got {value[:80]!r}"
        )
    return (m["glob"], m["kind"]) if m["rank"] is None else (m["glob"], m["kind"], int(m["rank"]))



# ----------------------------------------------------------------- a torchrun group
def run_group(
    case, settings, *, device_kind: str, world_size: int, threads: int | None, memory_limit_bytes: int | None,
    fault: dict | None, timeout_s: float,
    on_start: Callable[[int], None] = lambda pid: None,
    should_abandon: Callable[[], str | None] = lambda: None,
    job_dir: str | Path | None = None,
    nodes: dict | None = None,
) -> CaseRun:
    """Run parallel ``case`` as a group of ``world_size`` ranks: torch's elastic agent
    (:mod:`hwbench.parallel.agent`, what ``torchrun --standalone`` runs) in its own
    session, each rank running :mod:`hwbench.parallel.rank`. Ranks report through files
    in a temporary job folder. A rank that fails, dies or runs out of memory fails the
    case with that rank's reason; at ``timeout_s`` or on ``should_abandon()`` the group
    is killed. Afterwards no process of the group survives: the agent's process group
    and every rank pid the ranks wrote are killed (ranks also die with the agent,
    PR_SET_PDEATHSIG). An ok run holds the ranks' reports (``CaseRun.reports``), which
    :func:`hwbench.merge.merge_ranks` joins into one outcome.

    ``nodes`` (a multi-node run: ``nnodes``, ``endpoint``, ``rdzv_id``,
    ``join_timeout_s``): the group spans ``nnodes`` machines; this one starts
    ``world_size / nnodes`` ranks and its result holds their reports only."""
    import json
    import subprocess
    import tempfile

    from .parallel.report import read_reports

    own = job_dir is None
    tmp = tempfile.TemporaryDirectory(prefix="hwbench-group-") if own else None
    jd = Path(tmp.name if tmp else job_dir)
    jd.mkdir(parents=True, exist_ok=True)
    job = {"case": case.to_dict(), "settings": settings.model_dump(mode="json"), "device_kind": device_kind,
           "threads": threads, "memory_limit_bytes": memory_limit_bytes, "fault": fault, "nodes": nodes}
    nproc = world_size // nodes["nnodes"] if nodes else world_size
    (jd / "job.json").write_text(json.dumps(job))
    before = oom_counters(os.getpid())
    launch = time.monotonic()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(jd / "group.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.parallel.agent", str(jd), str(nproc)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    on_start(proc.pid)
    deadline = launch + timeout_s
    run: CaseRun | None = None
    try:
        while proc.poll() is None:
            time.sleep(0.05)
            if time.monotonic() > deadline:
                run = CaseRun("timeout", f"no result within timeout_s = {timeout_s:g} s; the group of "
                                         f"{nproc} ranks{' on this node' if nodes else ''} was killed")
                break
            why = should_abandon()
            if why:
                run = CaseRun("abandoned", why)
                break
    finally:
        group_pids = kill_group(proc, jd)
        log.close()
    end = time.monotonic()
    if run is None:
        run = _group_result(jd, nproc, before, memory_limit_bytes, device_kind)
        if run.status == "ok":
            run.reports = read_reports(jd)  # joined by hwbench.merge.merge_ranks
    run.launch, run.end = launch, end
    run.pids = group_pids  # the agent and every rank (tests check that none survives)
    if tmp is not None:
        tmp.cleanup()
    return run


def _group_result(jd: Path, nproc: int, before: dict[str, int], memory_limit_bytes: int | None,
                  device_kind: str) -> CaseRun:
    """ok when each of the ``nproc`` ranks of this machine reported ok; else the reason of the rank that failed first:

    1. a rank that died without reporting (a signal other than the agent's SIGTERM
       teardown, or an exit code), classified as a worker's death (oom counters, memory
       cap); its peers' errors ("connection closed by peer") are consequences;
    2. else the rank whose own report (an exception, out of memory) came first in time;
    3. else what the agent said (a rendezvous error), or how many ranks reported."""
    from .parallel.report import AgentReport, read_reports

    reports = read_reports(jd)
    try:
        agent = AgentReport.model_validate_json((jd / "agent.json").read_text())
    except (OSError, ValueError):
        agent = None
    died = {rank: f for rank, f in (agent.failures.items() if agent is not None else ())
            if rank not in reports and f.get("exitcode") != -signal.SIGTERM}
    if died:
        rank, f = min(died.items(), key=lambda kv: (kv[1].get("timestamp") or 0, kv[0]))
        from . import devices

        capped = (memory_limit_bytes / 2**30
                  if memory_limit_bytes and devices.KINDS.get(device_kind).caps_address_space else None)
        status, reason = classify_death(f.get("exitcode"), before, oom_counters(os.getpid()), capped)
        return CaseRun(status, f"rank {rank}: {reason.replace('worker', 'rank process', 1)}")
    bad = [r for r in reports.values() if r.status != "ok"]
    if bad:
        r = min(bad, key=lambda r: (r.t_failed or float("inf"), r.rank))
        return CaseRun(r.status, f"rank {r.rank}: {r.reason}")
    if len(reports) == nproc and (agent is None or agent.status == "ok"):
        return CaseRun("ok")
    if agent is not None and agent.error:
        return CaseRun("failed", f"torchrun agent: {agent.error}")
    tail = ""
    try:
        tail = (jd / "group.log").read_text(errors="replace").strip().splitlines()[-1][:500]
    except (OSError, IndexError):
        pass
    return CaseRun("failed", f"the group ended with {len(reports)} of {nproc} rank reports" +
                   (f"; last log line: {tail}" if tail else ""))


def kill_group(proc, jd: Path) -> list[int]:
    """End the agent (SIGTERM first: it stops its ranks) and then SIGKILL whatever is
    left: the agent's process group and every rank pid the ranks wrote. Returns every
    pid of the group."""
    pids = [proc.pid]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)
    for p in sorted(jd.glob("rank*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(p.read_text())
            pids.append(pid)
            if rank_alive(pid):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(rank_alive(p) for p in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids


def rank_alive(pid: int) -> bool:
    """Whether ``pid`` is still a running rank of a group (a zombie, about to be reaped,
    is not; a pid the system reused for another program is not ours to kill). Rank pids
    are not our children, so os.waitpid cannot tell."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmd = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X") and b"hwbench.parallel" in cmd
