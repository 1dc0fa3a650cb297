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
from typing import Any, Callable

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


# ----------------------------------------------------------------- fault injection
FAULTS = ("raise", "hang", "segfault", "oom", "exit")
_FAULT_RE = re.compile(r"^(?P<glob>.+)=(?P<kind>[a-z]+)$")


def parse_fault(value: str | None) -> tuple[str, str] | None:
    """``HWBENCH_INJECT_FAULT="<glob on case_id>=<kind>"`` (tests and the reliability
    scripts) -> (glob, kind). A value that does not parse is a user error, not silence."""
    from .errors import UserError

    if not value:
        return None
    m = _FAULT_RE.match(value)
    if not m or m["kind"] not in FAULTS:
        raise UserError(
            f"HWBENCH_INJECT_FAULT: expected '<glob on case_id>=<{'|'.join(FAULTS)}>', got {value[:80]!r}"
        )
    return m["glob"], m["kind"]

