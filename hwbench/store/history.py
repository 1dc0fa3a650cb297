"""``hwbench history`` over folders through the store: the runs and the tracked
column come from the cached tables; only the two runs on either side of a change point
are parsed (for what changed in their environments). The same History as
:func:`hwbench.analysis.history.history` over the parsed records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

from .cache import Entry, Store
from .read import _plain, connect

# columns load_results computes across a run's cases (record_rows), which history's
# per-case value (derive.case_row) does not have: such a metric is read from the records
ACROSS_CASES = ("scaling_efficiency", "scaling_baseline_run_id", "comm_compression_ratio")


def usable(entries: list[Entry], metric: str) -> bool:
    """Whether the store can answer: no multi-node parts to join, and a per-case metric."""
    return metric not in ACROSS_CASES and not any(e.kind == "part" for e in entries)


def light_runs(store: Store, entries: list[Entry]):
    """[(path as given, a light run)] in the readers' order: each light run has the
    attributes history and ``unique_runs`` read (run_id, created, updated, cases,
    suite.name, environment.hostname / hwbench_git_commit, and ``key``)."""
    con = connect(store, entries)
    df = con.execute("SELECT results_file, run_id, created, updated, hostname, hwbench_git_commit, suite, n_cases "
                     "FROM runs").df()
    con.close()
    by_file = {r["results_file"]: r for r in df.to_dict("records")}
    out = []
    for e in entries:
        r = by_file.get(e.path)
        if e.kind != "run" or r is None:
            continue
        r = {k: _plain(v) for k, v in r.items()}
        out.append((e.given, SimpleNamespace(
            run_id=r["run_id"], created=r["created"], updated=r["updated"], cases=range(r["n_cases"] or 0),
            suite=SimpleNamespace(name=r["suite"]), path=e.path,
            environment=SimpleNamespace(hostname=r["hostname"], hwbench_git_commit=r["hwbench_git_commit"]))))
    return out


def case_values(store: Store, entries: list[Entry], metric: str, case_glob: str | None) -> dict[str, list]:
    """results_file (absolute) -> [(case_id, value)] of its ok cases matching
    ``case_glob``, in the run's order (a metric that is no column gives no values)."""
    import fnmatch

    con = connect(store, entries)
    cols = [c[0] for c in con.execute("DESCRIBE cases").fetchall()]
    if metric not in cols:
        con.close()
        return {}
    quoted = '"' + metric.replace('"', '""') + '"'
    df = con.execute(f"SELECT results_file, case_id, {quoted} AS v FROM cases WHERE status = 'ok'").df()
    con.close()
    out: dict[str, list] = {}
    for f, cid, v in zip(df["results_file"], df["case_id"], df["v"].astype(object)):
        if case_glob and not fnmatch.fnmatchcase(cid, case_glob):
            continue
        out.setdefault(f, []).append((cid, _plain(v)))
    return out


def history(store: Store, entries: list[Entry], *, case_glob: str | None, metric: str, threshold: float,
            warn: Callable[[str], None]):
    """The History of ``entries`` (see the module's docstring); ``warn`` gets a copy
    of a run given twice, as the readers warn."""
    from ..analysis.compare import unique_runs
    from ..analysis.history import history_of, order_runs
    from ..results import read_record

    runs, dups = unique_runs(light_runs(store, entries), record=lambda pr: pr[1], label=lambda pr: str(pr[0]))
    for d in dups:
        warn(d)
    ordered = order_runs(runs)
    values = case_values(store, entries, metric, case_glob)
    cache: dict[int, object] = {}

    def record(k: int):
        if k not in cache:
            cache[k] = read_record(ordered[k][0])
        return cache[k]

    return history_of(ordered, [values.get(r.path, []) for _, r in ordered], metric=metric, threshold=threshold,
                      record=record)
