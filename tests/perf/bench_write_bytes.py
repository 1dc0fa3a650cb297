"""Bytes a run writes, for N = 100 and N = 300 cases (issue 22: they grow linearly).

Runs a tiny sweep (mlp:tiny, infer, batch sizes 1..N) through ``run_suite`` in this
process and reads ``write_bytes`` of ``/proc/self/io`` before and after: with the
in-process fake launcher (tests/fakes/fake_launcher.py, the default) every byte the run
writes is written by this process, the runner. ``--real`` runs real workers instead
(forked processes; their own writes are not counted, the runner's are). It also counts
the bytes at the writer seam (the whole-file writes of hwbench.results and the journal
appends of hwbench.journal), which page-cache accounting does not round to pages.

Whole-file rewrites after every case make the 300-case run write about 9x the 100-case
one; appending each case once makes it about 3x.

    python tests/perf/bench_write_bytes.py [--n 100 300] [--real]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SETTINGS = {"warmup_iters": "1", "min_time_s": "0.01", "min_iters": "2", "max_iters": "5", "timeout_s": "60",
            "idle_baseline_s": "0", "repeats": "1"}


def proc_write_bytes() -> int | None:
    """``write_bytes`` of /proc/self/io (bytes this process caused to be written to
    storage), or None where it cannot be read."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def suite_text(n: int) -> str:
    sizes = ",".join(str(b) for b in range(1, n + 1))
    lines = "\n".join(f"{k} = {v}" for k, v in SETTINGS.items())
    return (f'[suite]\nname = "bytes"\n[settings]\n{lines}\n'
            f'[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["infer"]\nbatch_sizes = [{sizes}]\n')


class SeamCounter:
    """Counts the bytes given to the results writers (whole-file and journal) while on."""

    def __init__(self):
        self.whole = self.journal = 0

    def __enter__(self):
        from hwbench import results

        try:
            from hwbench import journal
        except ImportError:  # an hwbench from before the journal: whole-file writes only
            journal = None
        self._saved = (results.write_text_atomic, journal.JournalWriter._write if journal else None)
        whole, write = self._saved

        def count_whole(path, data):
            self.whole += len(data.encode("utf-8"))
            return whole(path, data)

        def count_journal(writer, fd, data):
            self.journal += len(data)
            return write(writer, fd, data)

        results.write_text_atomic = count_whole
        if journal is not None:
            journal.JournalWriter._write = count_journal
        return self

    def __exit__(self, *exc):
        from hwbench import results

        results.write_text_atomic = self._saved[0]
        if self._saved[1] is not None:
            from hwbench import journal

            journal.JournalWriter._write = self._saved[1]


def measure(n: int, folder: Path, real: bool = False) -> dict:
    """Run the N-case sweep into ``folder``; the bytes it wrote (``write_bytes`` None
    where /proc/self/io is unreadable) and the results file's final size."""
    import hwbench

    folder.mkdir(parents=True, exist_ok=True)
    suite = folder / "bytes.toml"
    suite.write_text(suite_text(n))
    launcher = None
    if not real:
        from fakes.fake_launcher import FakeLauncher

        launcher = FakeLauncher()
    before = proc_write_bytes()
    with SeamCounter() as seam:
        out = hwbench.run_suite(suite, out_dir=folder / "out", launcher=launcher)
    after = proc_write_bytes()
    assert out.exit_code == 0 and len(out.record.cases) == n, out.message
    return {"n": n, "write_bytes": None if before is None else after - before,
            "seam_bytes": seam.whole + seam.journal, "file_bytes": out.path.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--real", action="store_true", help="real workers instead of the in-process fake")
    a = ap.parse_args()
    rows = []
    for n in a.n:
        with tempfile.TemporaryDirectory() as d:
            rows.append(measure(n, Path(d), a.real))
    print(f"{'cases':>6} {'write_bytes':>14} {'seam bytes':>14} {'file bytes':>12}")
    for r in rows:
        wb = "n/a" if r["write_bytes"] is None else f"{r['write_bytes']:,}"
        print(f"{r['n']:>6} {wb:>14} {r['seam_bytes']:>14,} {r['file_bytes']:>12,}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        for key in ("write_bytes", "seam_bytes"):
            if first[key] and last[key] is not None:
                print(f"{key}: {last['n']} / {first['n']} cases = {last[key] / first[key]:.2f}x "
                      f"(cases {last['n'] / first['n']:.1f}x)")


if __name__ == "__main__":
    main()
