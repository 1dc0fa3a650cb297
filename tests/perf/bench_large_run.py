"""A 100,000-case results file: how long ``hwbench report`` takes on it, and its peak
memory (issue 22). The file is generated, not committed: the cases of an example run
(results/examples/smoke-cpu-amd-epyc-2cores.json, those of at most 8 KB each, i.e. all
but the four tiny-model inference cases with thousands of raw times), cycled with new
case ids (``.../rK``) and thread counts until there are N of them, written as a stream.

    python tests/perf/bench_large_run.py [--cases 100000] [--keep FILE] [--what load report csv]

Prints the file's size, then for each step its wall time and CPU time (s; on a shared
machine the CPU time says more) and the peak resident memory of the process that ran
it (``ru_maxrss`` of that child, MiB): ``report`` is
``hwbench report FILE`` in a subprocess (output to /dev/null), ``csv`` the same with
``--format csv``, ``load`` is ``hwbench.load_results(FILE)`` in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"
MAX_CASE_BYTES = 8192


def generate(path: Path, n: int, example: Path = EXAMPLE) -> int:
    """Write a results file of ``n`` cases made from ``example``'s; returns its size."""
    rec = json.loads(example.read_text())
    cases = [c for c in rec.pop("cases") if len(json.dumps(c)) <= MAX_CASE_BYTES]
    rec["status"] = "complete"
    head = json.dumps(rec, indent=1)[:-2] + ',\n "cases": [\n'
    with open(path, "w", encoding="utf-8") as f:
        f.write(head)
        for i in range(n):
            c = dict(cases[i % len(cases)])
            k = i // len(cases)
            c["case_id"] = f"{c['case_id']}/r{k}"
            c["case"] = {**c["case"], "threads": k + 1}
            f.write(("" if i == 0 else ",\n") + json.dumps(c))
        f.write("\n ]\n}\n")
    return path.stat().st_size


def child(args: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of ``python args`` in a subprocess: its
    own resource usage (``wait4``), not the largest of the children so far."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.perf_counter() - t
        if p.returncode != 0:
            err.seek(0)
            print(err.read()[-2000:], file=sys.stderr)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode


STEPS = {
    "load": ["-c", "import sys, hwbench; df = hwbench.load_results(sys.argv[1]); print(len(df))"],
    "report": ["-m", "hwbench.cli", "report"],
    "csv": ["-m", "hwbench.cli", "report", "--format", "csv"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="write the file here (and keep it) instead of a temporary folder")
    ap.add_argument("--what", nargs="+", choices=list(STEPS), default=["load", "report"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = a.keep or Path(d) / "large.json"
        if not path.exists():
            t = time.perf_counter()
            size = generate(path, a.cases)
            print(f"generated {path}: {a.cases:,} cases, {size / 2**20:,.0f} MiB in {time.perf_counter() - t:.0f} s")
        else:
            print(f"using {path}: {path.stat().st_size / 2**20:,.0f} MiB")
        for step in a.what:
            wall, cpu, rss, rc = child([*STEPS[step], str(path)])
            print(f"{step:>7}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, peak RSS {rss:7,.0f} MiB"
                  f"{'' if rc == 0 else f', exit {rc}'}")


if __name__ == "__main__":
    main()
