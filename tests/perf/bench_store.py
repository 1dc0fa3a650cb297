"""Scale of the store and of the readers over a synthetic fleet (tests/perf/make_fleet.py).

    python tests/perf/bench_store.py --runs 500                # query: first vs second
    python tests/perf/bench_store.py --runs 5000 --readers     # + report, history, compare
    python tests/perf/bench_store.py --folder F --cache C --compare-only   # compare, cache built

Each command runs as `python -m hwbench.cli ...` in a fresh process (a new, empty store
cache per benchmark), timed with its peak RSS (from the kernel's accounting of the
child). Checks that `select count(*) from cases` gives the copies' case count. The
target (issue 22): the second query at least 5x faster than the first; the readers "in
seconds, memory bounded". Figures for the docs: docs/store.md, "Scale".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fleet import ROOT, make  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of ``python -m hwbench.cli ARGS``."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        out = os.open(env["_OUT"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.execvpe(sys.executable, [sys.executable, "-m", "hwbench.cli", *args], env)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 1024, Path(env["_OUT"]).read_text()


def expected_cases(runs: int) -> int:
    files = sorted((ROOT / "results" / "examples").glob("*.json"))
    n = [len(json.loads(p.read_text())["cases"]) for p in files]
    return sum(n[i % len(n)] for i in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--folder", type=Path, help="an existing fleet (default: a new one in a temporary folder)")
    ap.add_argument("--readers", action="store_true", help="also time report, history and compare")
    ap.add_argument("--cache", type=Path, help="the store's cache (default: a new one; one already built "
                                                "makes the first query read it too)")
    ap.add_argument("--compare-only", action="store_true",
                    help="time compare alone (give --cache of a cache built by an earlier run)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwbench-fleet."))
    fleet = args.folder or work / "fleet"
    if args.folder is None:
        make(fleet, args.runs, halves=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HWBENCH_CACHE=str(args.cache or work / "cache"),
               _OUT=str(work / "out"), COLUMNS="80")
    dirs = [str(fleet / "a"), str(fleet / "b")]
    if args.compare_only:
        wall, rss, out = timed(["compare", *dirs, "--allow-different-hardware", "--format", "csv"], env)
        print(f"{'compare':16} {wall:8.2f} s  peak RSS {rss:7.0f} MiB  ({len(out.splitlines()) - 1} rows)")
        print(f"({args.runs} runs in {fleet}; {os.cpu_count()} CPUs)")
        return
    want = expected_cases(args.runs)
    times = []
    for i in (1, 2):
        wall, rss, out = timed(["query", "select count(*) as n from cases", *dirs, "--format", "csv"], env)
        got = int(out.split()[-1])
        times.append(wall)
        print(f"query {i}: {wall:8.2f} s  peak RSS {rss:7.0f} MiB  count {got} (expected {want})"
              + ("" if got == want else "  WRONG"))
    print(f"second query {times[0] / times[1]:.1f}x faster than the first (target: at least 5x)")
    if args.readers:
        for name, cmd in (("report", ["report", *dirs, "--format", "csv"]),  # the store, built by the queries
                          ("history", ["history", *dirs, "--format", "csv"]),
                          ("compare", ["compare", *dirs, "--allow-different-hardware", "--format", "csv"])):
            wall, rss, _ = timed(cmd, env)
            print(f"{name:16} {wall:8.2f} s  peak RSS {rss:7.0f} MiB")
    print(f"({args.runs} runs in {fleet}; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
