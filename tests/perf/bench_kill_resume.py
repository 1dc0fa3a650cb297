"""Reliability: kill the runner with SIGKILL at random moments, resume, repeat.

Runs a suite (default: the smoke suite) through the real CLI; each cycle starts the run
(or resumes it), waits a random time, and kills the runner hard. Every snapshot of the
results file is read after each kill. At the end the run is resumed to completion and
checked: every case finished in any earlier snapshot is still there, unchanged (lost
must be 0), no case appears twice (duplicated must be 0), and no worker or forkserver
process outlived a killed runner (orphans must be 0).

    python tests/perf/bench_kill_resume.py [--cycles 10] [--suite suites/smoke.toml] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from hwbench.results import read_record

ROOT = Path(__file__).resolve().parents[2]


def start(suite: str, out: Path, resume: Path | None) -> subprocess.Popen:
    args = [sys.executable, "-m", "hwbench.cli", "run", suite]
    args += ["--resume", str(resume)] if resume is not None else ["--out", str(out)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--suite", default="suites/smoke.toml")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-wait", type=float, default=12.0, help="latest kill moment after start, s")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    finished: dict[str, str] = {}  # case_id -> its JSON when first seen finished
    duplicated = orphans = kills = 0
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        path: Path | None = None
        for cycle in range(a.cycles):
            proc = start(a.suite, out, path)
            wait = rng.uniform(0.5, a.max_wait)
            kids: set[int] = set()
            t_end = time.time() + wait
            while time.time() < t_end and proc.poll() is None:
                try:
                    kids |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.02)
            if proc.poll() is not None:
                print(f"cycle {cycle + 1}: run completed before the kill (exit {proc.returncode})")
                break
            proc.kill()
            proc.wait()
            kills += 1
            _, alive = psutil.wait_procs([psutil.Process(p) for p in kids if psutil.pid_exists(p)], timeout=10)
            orphans += len(alive)
            files = sorted(out.glob("*.json"))
            if not files:
                print(f"cycle {cycle + 1}: killed after {wait:.1f} s, before the results file existed")
                continue
            path = files[0]
            rec = read_record(path)  # must be valid after any kill
            ids = [c.case_id for c in rec.cases]
            duplicated += len(ids) - len(set(ids))
            for c in rec.cases:
                if c.status in ("ok", "skipped"):
                    finished.setdefault(c.case_id, c.model_dump_json())
            print(f"cycle {cycle + 1}: killed after {wait:.1f} s; {len(ids)} cases in the file")
        if path is None:
            raise SystemExit("no results file was ever written; raise --max-wait")
        proc = start(a.suite, out, path)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"final resume failed ({proc.returncode}): {err}")
        final = read_record(path)
        ids = [c.case_id for c in final.cases]
        duplicated += len(ids) - len(set(ids))
        now = {c.case_id: c.model_dump_json() for c in final.cases}
        lost = sum(1 for cid, text in finished.items() if now.get(cid) != text)
        ok = sum(1 for c in final.cases if c.status == "ok")
    print(f"\ncycles: {kills} kills; cases finished: {ok} of {len(ids)} ({len(finished)} finished before a kill); "
          f"cases lost: {lost}; cases duplicated: {duplicated}; orphan processes: {orphans}; final status: {final.status}")
    if lost or duplicated or orphans:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
