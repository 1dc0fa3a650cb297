"""asv benchmarks: a few small hwbench cases, run through the library API.

asv tracks this repository's own speed commit by commit (``asv run``, ``asv continuous``,
``asv publish``). Each ``track_*`` benchmark reports one number per case, with its unit,
from a single :func:`hwbench.run_suite` run of :data:`SUITE` made once per asv run
(``setup_cache``): the cases measure themselves with hwbench's own timing (warmup,
raw per-iteration times, a fresh worker process per case), and asv records the median.

For hardware evaluations and pull-request checks on any machine, use
``hwbench compare`` / ``hwbench history`` on results files instead (docs/regression.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

# Tiny CPU cases, one per model family that is cheap to build: seconds in all. One
# intra-op thread: on a shared CI runner, two threads that wait for each other at every
# parallel region turn any other load into huge delays (oversubscription).
SUITE = """
[suite]
name = "asv"
description = "asv benchmarks of hwbench itself: tiny CPU cases"

[settings]
warmup_iters = 3
min_time_s = 0.3
min_iters = 10
repeats = 1
idle_baseline_s = 0
collectors = []
check_accuracy = false
count_flops = false
timeout_s = 120

[[matrix]]
models = ["mlp:tiny", "cnn:tiny", "encoder:tiny"]
modes = ["infer"]
batch_sizes = [8]
precisions = ["fp32"]
devices = ["cpu"]
threads = [1]
"""

CASES = [
    "mlp:tiny/infer/bs8/fp32/eager/cpu/t1",
    "cnn:tiny/infer/bs8/img64/fp32/eager/cpu/t1",
    "encoder:tiny/infer/bs8/seq32/fp32/eager/cpu/t1",
]


def run_cases(out_dir: str | Path) -> dict[str, dict[str, float]]:
    """Run :data:`SUITE` into ``out_dir``; per case id: ``throughput`` (samples/s),
    ``latency_ms`` (median) and ``path`` (the results file)."""
    import hwbench
    from hwbench.analysis.derive import record_rows

    suite = Path(out_dir) / "asv.toml"
    suite.write_text(SUITE)
    out = hwbench.run_suite(suite, out_dir=out_dir)
    if out.record is None:
        raise RuntimeError(f"hwbench run failed: {out.message}")
    rows = record_rows(out.record, str(out.path))
    bad = [f"{r['case_id']}: {r['status']} {r['reason']}" for r in rows if r["status"] != "ok"]
    if bad:
        raise RuntimeError("hwbench cases did not run: " + "; ".join(bad))
    return {r["case_id"]: {"throughput": r["throughput_samples_per_s"], "latency_ms": r["latency_ms_p50"],
                           "path": str(out.path)} for r in rows}


class Cases:
    """hwbench cases; one ``run_suite`` per asv run, shared by every benchmark here."""

    params = [CASES]
    param_names = ["case"]
    timeout = 300

    def setup_cache(self):
        with tempfile.TemporaryDirectory(prefix="hwbench-asv-") as d:
            return run_cases(d)

    def track_throughput(self, results, case):
        """Samples per second: batch size / median iteration time."""
        return results[case]["throughput"]

    track_throughput.unit = "samples/s"

    def track_latency(self, results, case):
        """Median time of one iteration (one batch), ms."""
        return results[case]["latency_ms"]

    track_latency.unit = "ms"
