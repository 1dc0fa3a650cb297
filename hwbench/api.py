"""``run_suite()``: the one way to run a suite. The CLI, the tests and the benchmark
scripts all call it.

It owns what surrounds the cases: loading and checking the suite, the results file
(new, or resumed: same machine, same suite, same software unless allowed) and its lock,
the environment of this segment, the worker server, the collectors and the idle
baseline. User errors are raised (:class:`~hwbench.errors.UserError`) before torch is
imported or a worker server starts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ResultsError, UserError
from .records import MACHINE_KEYS, SOFTWARE_KEYS, RunRecord, Segment, SuiteRef

# Exit codes a CI job can rely on (also in docs/command-line.md and `hwbench run --help`).
EXIT_OK = 0  # every case ran ok (or was skipped while others ran)
EXIT_USER = 2  # user error, including a suite of which nothing can run here
EXIT_CASES_FAILED = 3  # some case failed, ran out of memory or timed out
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass(frozen=True)
class RunOutcome:
    """What ``run_suite`` did: the final record, where it is, and the exit code."""

    record: RunRecord | None
    path: Path | None
    exit_code: int
    message: str = ""  # said to the user at the end (interruption, write error, nothing to do)
    planned: tuple = field(default=(), repr=False)


def _load(suite) -> Any:
    from .spec import LoadedSuite, load_suite

    return suite if isinstance(suite, LoadedSuite) else load_suite(suite)


def resume_target(path: str | Path) -> Path:
    """The file a resume writes: through a symlink, its target (an atomic rename onto the
    link would replace the link with a file)."""
    p = Path(path)
    return p.resolve() if p.is_symlink() else p


def check_resume(rec: RunRecord, path: Path, suite, environment: dict[str, Any] | None,
                 allow_env_change: bool) -> list[str]:
    """Refuse a resume onto another suite, another machine, or (unless allowed) other
    software. Returns the accepted software differences ("torch_version: 2.12 -> 2.13")."""
    if rec.suite.name != suite.spec.suite.name:
        raise ResultsError(f"{path}: results file of suite {rec.suite.name!r}, not {suite.spec.suite.name!r}")
    if rec.suite.hash != suite.suite_hash:
        raise ResultsError(
            f"{path}: cannot resume: suite {suite.path} changed since this run started "
            f"(hash {rec.suite.hash} in the file, {suite.suite_hash} now)"
        )
    if environment is None:
        return []
    first = rec.environment.model_dump()
    for key in MACHINE_KEYS:
        if first.get(key) != environment.get(key):
            raise ResultsError(
                f"{path}: cannot resume: the file was written on another machine "
                f"({key} {first.get(key)!r} there, {environment.get(key)!r} here)"
            )
    accs = lambda env: [g.get("uuid") or g.get("name") for g in env.get("accelerators") or []]  # noqa: E731
    if accs(first) != accs(environment):
        raise ResultsError(f"{path}: cannot resume: the accelerators differ from those of the run ({accs(first)} there)")
    changes = [f"{k}: {first.get(k)} -> {environment.get(k)}" for k in (*SOFTWARE_KEYS, "hwbench_git_commit")
               if first.get(k) != environment.get(k)]
    if changes and not allow_env_change:
        raise ResultsError(
            f"{path}: cannot resume: the software changed since the run started ({'; '.join(changes)}); "
            "numbers from both would sit in one file: pass --allow-env-change to accept and record it"
        )
    return changes


def plan_run(suite, *, resume: str | Path | None = None, filters: Iterable[str] = (), nodes=None):
    """Load and plan without running (:class:`hwbench.planning.Plan`): the cases this
    segment selects, the run's whole scope, and what is left to do. Raises UserError
    for anything the user can fix."""
    from . import planning

    s = _load(suite)
    filters = list(filters)
    planning.select(s, filters)  # filter errors before anything is read or imported
    rec, path = None, None
    if resume is not None:
        from .results import read_record

        path = resume_target(resume)
        rec = read_record(path)
        check_resume(rec, path, s, None, True)
    return planning.plan_run(s, filters, rec, path, nodes=nodes)


def run_suite(
    suite,
    *,
    out_dir: str | Path = "results",
    resume: str | Path | None = None,
    filters: Iterable[str] = (),
    reporter=None,
    allow_env_change: bool = False,
    grace_s: float = 10.0,
    fault: str | None = None,
    nvml: Any = None,
    powercap_root: Any = None,
    libs: dict[str, Any] | None = None,
    on_start=None,
    nodes=None,
    launcher=None,
) -> RunOutcome:
    """Run ``suite`` (a path, a shipped suite's name, or a LoadedSuite) and write one
    results file into ``out_dir`` -- or continue the run in ``resume``.

    ``filters`` select cases (see ``hwbench run --filter``); ``reporter`` receives
    progress (runner.Reporter); ``allow_env_change`` accepts a resume under other
    software versions (recorded in the segment); ``grace_s`` is how long the running
    case may go on after SIGTERM; ``fault`` is ``HWBENCH_INJECT_FAULT`` (tests);
    ``libs`` (vendor library name -> module, e.g. ``{"amdsmi": fake}``; ``nvml`` is
    short for ``libs={"pynvml": nvml}``) and ``powercap_root`` replace the hardware
    boundary in tests (:class:`hwbench.collectors.Boundary`); ``on_start``
    is called with the results path once the run has claimed it. ``nodes``
    (:class:`hwbench.parallel.nodes.Nodes`): this machine's place in a multi-node run;
    it runs the parallel cases in lockstep with the other nodes and writes its part.
    ``launcher`` (:class:`hwbench.launch.Launcher`): where cases run; the default forks
    real workers, tests pass an in-process fake.
    """
    from . import launch, planning, runner
    from .results import read_record

    s = _load(suite)
    filters = list(filters)
    planning.select(s, filters)
    fault_spec = launch.parse_fault(fault)
    rec, path = None, None
    if resume is not None:
        path = resume_target(resume)
        rec = read_record(path)  # a file that does not validate is refused before the lock is even taken
    launcher = launcher if launcher is not None else launch.ProcessLauncher()
    launcher.prestart()  # the worker server imports torch while this process plans
    from . import env as envmod

    environment = envmod.fingerprint()
    run_id = uuid.uuid4().hex[:12]
    if path is None:
        path = runner.default_out_path(s, out_dir, environment["hostname"], run_id,
                                       node=nodes.node_rank if nodes is not None else None)
    from .io import storage  # data / checkpoint cases' scratch folder, checked before any worker starts

    s = storage.resolve_scratch(s, Path(path))
    environment["storage"] = storage.environment_facts(s, Path(path))
    plan = planning.plan_run(s, filters, rec, path, nodes=nodes)
    if resume is None and not any(p.skip_reason is None for p in plan.planned):
        raise UserError(f"{s.path}: nothing can run on this machine: " + skip_summary(plan.planned))
    libs = {**(libs or {}), **({"pynvml": nvml} if nvml is not None else {})}
    ctx = _Context(s, path, filters, environment, run_id, reporter, grace_s, fault_spec, libs, powercap_root,
                   launcher, allow_env_change)
    return _run_locked(ctx, plan, nodes, on_start)


@dataclass(frozen=True)
class _Context:
    """What every stage of one ``run_suite`` call shares (fixed once the call starts)."""

    suite: Any  # LoadedSuite
    path: Path
    filters: list[str]
    environment: dict[str, Any]
    run_id: str
    reporter: Any
    grace_s: float
    fault: tuple | None
    libs: dict[str, Any]  # vendor libraries replaced in tests (collectors.Boundary)
    powercap_root: Any
    launcher: Any
    allow_env_change: bool


def _run_locked(ctx: _Context, plan, nodes, on_start) -> RunOutcome:
    """Under the results file's lock: check a resume against the file as it is now,
    agree with the other nodes (a multi-node run), then run."""
    from .results import locked, read_record

    with locked(ctx.path):
        changes: list[str] = []
        if plan.record is not None:
            rec = read_record(ctx.path)  # again, under the lock: another resume may have written it
            changes = check_resume(rec, ctx.path, ctx.suite, ctx.environment, ctx.allow_env_change)
            check_node_resume(rec, ctx.path, nodes)
            plan = plan.resumed(rec)
            if not plan.todo and nodes is None:  # a node's part asks the others first (below)
                return _nothing_to_resume(rec, ctx.path, plan.scope)
        coordinator = None
        if nodes is not None:
            from .parallel.nodes import Coordinator

            coordinator = Coordinator(nodes, timeout_s=max(300.0, ctx.suite.spec.settings.timeout_s))
        try:
            rerun: frozenset[str] = frozenset()
            if coordinator is not None:
                union = coordinator.agree([p.case.case_id for p in plan.planned if p.skip_reason is None],
                                          [p.case.case_id for p in plan.todo if p.skip_reason is None])
                rerun = frozenset(union) - {p.case.case_id for p in plan.todo}
                if plan.record is not None and not plan.todo and not union:
                    return _nothing_to_resume(plan.record, ctx.path, plan.scope)
            if on_start is not None:
                on_start(ctx.path)
            will_run = any(p.skip_reason is None for p in plan.todo) or bool(rerun)
            out = _execute(ctx, plan, changes, will_run, coordinator, rerun)
            if coordinator is not None and out.exit_code == EXIT_USER:  # its file cannot be written
                coordinator.say_stop("cannot write its results file")
            return out
        except BaseException as e:
            if coordinator is not None:  # the others would wait for this node at the next rendezvous
                coordinator.say_stop(f"failed ({type(e).__name__})")
            raise
        finally:
            if coordinator is not None:
                coordinator.finish(timeout_s=120.0)


def _nothing_to_resume(rec: RunRecord, path: Path, scope) -> RunOutcome:
    """Nothing left to run; an uncompacted journal (a run killed after its last case)
    is compacted, under the lock the caller holds."""
    from .journal import compact
    from .planning import pending

    try:
        compacted = compact(path, rec, "complete" if not pending(scope, rec) else "interrupted")
    except OSError as e:  # disk full: the file and its journal stay as they were
        raise ResultsError(f"{path}: cannot write the results file: {e.strerror or e}") from None
    if compacted:
        from .results import read_record

        rec = read_record(path)
    # finished = ok or skipped; failed / oom / timeout cases would run again
    what = "the run is complete" if rec.status == "complete" and not pending(scope, rec) else \
        "every selected case is finished"
    return RunOutcome(rec, path, EXIT_OK, f"{path}: {what} ({len(rec.cases)} cases); nothing to resume")


def check_node_resume(rec: RunRecord, path: Path, nodes) -> None:
    """A node's part resumes as the same node of a run of as many nodes; a single-machine
    file is not resumed as a part, nor a part without ``--nnodes``."""
    if rec.node is None and nodes is None:
        return
    if rec.node is None:
        raise ResultsError(f"{path}: a single-machine results file; it cannot be resumed as node "
                           f"{nodes.node_rank} of a {nodes.nnodes}-node run")
    want = f"--nnodes {rec.node.nnodes} --node-rank {rec.node.node_rank}"
    if nodes is None or (nodes.nnodes, nodes.node_rank) != (rec.node.nnodes, rec.node.node_rank):
        raise ResultsError(f"{path}: node {rec.node.node_rank} of a {rec.node.nnodes}-node run; resume it "
                           f"with {want} and a --rdzv-endpoint every node of the resume shares")


def skip_summary(planned) -> str:
    """Skip reasons grouped, with counts: one line however many cases share a reason."""
    groups: dict[str, list[str]] = {}
    for p in planned:
        if p.skip_reason:
            groups.setdefault(p.skip_reason, []).append(p.case.case_id)
    parts = [f"{reason} ({len(ids)} case{'s' * (len(ids) > 1)}, e.g. {ids[0]})" for reason, ids in
             sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    return "; ".join(parts)


def _execute(ctx: _Context, plan, changes: list[str], will_run: bool, coordinator=None,
             rerun: frozenset = frozenset()) -> RunOutcome:
    """Start the worker server and the collectors, add this segment to the record (a new
    one for a new run) and run the plan."""
    from . import runner
    from .collectors import CollectorSet

    s, rec = ctx.suite, plan.record
    settings = s.spec.settings
    index = len(rec.segments) if rec is not None else 0
    start_s = ctx.launcher.start() if will_run else None
    collectors = CollectorSet.for_suite(settings, libs=ctx.libs, powercap_root=ctx.powercap_root)
    r = runner.Runner(s, ctx.path, reporter=ctx.reporter or runner.Reporter(), collectors=collectors,
                      segment=index, fault=ctx.fault, stop=runner.StopRequest(grace_s=ctx.grace_s),
                      coordinator=coordinator, rerun=rerun, launcher=ctx.launcher)
    if coordinator is not None:
        n = coordinator.nodes
        r.reporter.message(f"multi-node run {n.job_id}: node {n.node_rank} of {n.nnodes}, rendezvous at "
                           f"{n.endpoint}; this file is this node's part (readers join the parts)")
    governor = ctx.environment.get("cpu_governor")
    if governor and governor != "performance":
        r.reporter.message(f"note: CPU frequency governor {governor!r}, not 'performance': the clock follows the "
                           "load, so CPU timings vary more between runs (recorded as environment.cpu_governor)")
    segment = _segment(ctx, r.reporter, collectors, index, changes, will_run, start_s)
    if rec is None:
        rec = RunRecord(
            run_id=ctx.run_id,
            created=runner.now_iso(),
            status="running",
            suite=SuiteRef(name=s.spec.suite.name, path=str(s.path), hash=s.suite_hash, resolved=s.resolved),
            segments=[segment],
            node=_node_role(coordinator),
        )
    else:
        rec = rec.model_copy(update={"segments": [*rec.segments, segment]})
    try:
        final = r.run(plan.planned, rec, plan.scope)
    finally:
        if collectors is not None:
            collectors.stop()
    return _outcome(final, ctx.path, r, s)


def _segment(ctx: _Context, reporter, collectors, index: int, changes: list[str], will_run: bool,
             start_s: float | None) -> Segment:
    """This segment's record: environment, filters, the collectors started (and the idle
    baseline measured where cases will run) and the machine profile found."""
    from . import runner

    settings = ctx.suite.spec.settings
    idle = None
    if collectors is not None:
        collectors.start()
        for note in collectors.machine_notes():
            reporter.message(note)
        if will_run and settings.idle_baseline_s > 0:
            # after the worker server is up: its torch import is not idle
            reporter.message(f"measuring idle power for {settings.idle_baseline_s:g} s ...")
            idle = collectors.measure_idle(settings.idle_baseline_s)
    # Machine profile (issue 14): the newest `hwbench probe` profile of this machine (same
    # host, CPU model, GPUs) found beside the results file goes on the segment, so derive
    # can place every case on the measured roofline. None where no probe was run here.
    from .probe.profile import find_for_run

    machine_profile = find_for_run(ctx.path, ctx.environment)
    if machine_profile is not None:
        reporter.message(f"machine profile: {machine_profile.path} ({machine_profile.created})")
    return Segment(
        index=index,
        started=runner.now_iso(),
        environment=ctx.environment,
        filters=ctx.filters,
        env_changes=changes,
        idle_baseline=idle,
        collectors=collectors.info() if collectors is not None else None,
        worker_server_start_s=start_s,
        machine_profile=machine_profile,
    )


def _node_role(coordinator):
    from .records import NodeRole

    if coordinator is None:
        return None
    n = coordinator.nodes
    return NodeRole(job_id=n.job_id, nnodes=n.nnodes, node_rank=n.node_rank, rdzv_endpoint=n.endpoint)


def _outcome(record: RunRecord, path: Path, r, s) -> RunOutcome:
    resume = f"hwbench run {s.path} --resume {path}"
    if record.node is not None:
        n = record.node
        resume += (f" --nnodes {n.nnodes} --node-rank {n.node_rank} --rdzv-endpoint HOST:PORT --rdzv-id NEW_ID "
                   "(on every node, each with its own part)")
    if r.write_error:
        done = sum(c.status in ("ok", "skipped") for c in record.cases)
        return RunOutcome(record, path, EXIT_USER,
                          f"{r.write_error}; the file keeps the cases saved before it ({done} finished). "
                          f"Free space, then resume with: {resume}")
    if r.stop.requested:
        return RunOutcome(record, path, r.stop.exit_code,
                          f"Interrupted ({r.stop.signal_name}). Finished cases are saved. Resume with: {resume}")
    bad = [c for c in record.cases if c.status in ("failed", "oom", "timeout")]
    return RunOutcome(record, path, EXIT_CASES_FAILED if bad else EXIT_OK)
