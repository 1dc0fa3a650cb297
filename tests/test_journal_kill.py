"""kill -9 / resume cycles on a real runner process (full tier): whatever instant the
runner is killed at, every case it had saved is in the final file exactly once and
unchanged (tests/perf/bench_kill_resume.py is the longer benchmark of the same)."""

import os
import random
import signal
import subprocess
import sys
import time

from hwbench import journal
from hwbench.results import read_record
from conftest import ROOT, hwbench, write_suite

BODY = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,3,4,5]\n'


def start(cmd):
    return subprocess.Popen([sys.executable, "-m", "hwbench.cli", *map(str, cmd)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_after_cases(proc, out, at_least: int, extra_s: float, deadline_s: float = 120):
    """SIGKILL the runner (and its workers) once the run holds ``at_least`` cases and a
    further ``extra_s`` has passed (a random instant: inside a case, an append, ...)."""
    end = time.time() + deadline_s
    while time.time() < end and proc.poll() is None:
        files = list(out.glob("*.json"))
        if files and len(read_record(files[0], lambda w: None).cases) >= at_least:
            break
        time.sleep(0.02)
    time.sleep(extra_s)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_at_random_instants_then_resume_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(22)
    p = write_suite(tmp_path, BODY, settings="min_time_s = 0.05")
    out = tmp_path / "out"
    saved: dict[str, object] = {}  # case_id -> the case as first read after a kill
    uncompacted = 0
    f = None
    for cycle in range(3):
        proc = start(["run", p, "--out", out] if f is None else ["run", p, "--resume", f])
        kill_after_cases(proc, out, at_least=2 * cycle + 1, extra_s=rng.uniform(0, 0.4))
        (f,) = out.glob("*.json")
        uncompacted += journal.journal_path(f).exists()
        rec = read_record(f, lambda w: None)  # a torn last line is dropped, with a warning
        ids = [c.case_id for c in rec.cases]
        assert len(ids) == len(set(ids)), ids
        for c in rec.cases:
            assert saved.setdefault(c.case_id, c) == c  # what was saved stays as it was
        if rec.status != "running":
            break  # finished before the kill
    assert uncompacted >= 1  # a resume of an uncompacted run was exercised
    r = hwbench("run", p, "--resume", f)
    assert r.returncode == 0, r.stderr
    final = read_record(f)
    ids = [c.case_id for c in final.cases]
    assert len(ids) == len(set(ids)) == 10 and final.status == "complete"
    now = {c.case_id: c for c in final.cases}
    assert all(now[cid] == c for cid, c in saved.items()), "a saved case changed or was lost"
    assert not journal.journal_path(f).exists()
