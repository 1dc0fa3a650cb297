"""Collector overhead: the same case with collectors off (A) and on at the default
interval (B), alternating in ABBA order in one run; prints the throughput ratio per
model, and the CPU cost of one sampling pass (the direct overhead, far less noisy).
Target: under 1 % slowdown for the smoke suite's models on CPU.

    python tests/perf/bench_collector_overhead.py [--rounds 5] [--min-time 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import hwbench
from hwbench.analysis.derive import record_rows
from hwbench.collectors import CollectorSet
from hwbench.spec import parse_suite

MODELS = ["mlp:tiny", "cnn:tiny", "encoder:tiny", "decoder:tiny"]


def suite(model: str, min_time: float, collectors: bool):
    return parse_suite(f"""
[suite]
name = "overhead"
[settings]
warmup_iters = 5
min_time_s = {min_time}
min_iters = 10
idle_baseline_s = 0
collectors = {'["host", "nvidia", "rapl"]' if collectors else '[]'}
[[matrix]]
models = ["{model}"]
modes = ["infer", "train"]
batch_sizes = [8]
""")


def once(s, d: Path) -> list[float]:
    out = hwbench.run_suite(s, out_dir=d)
    return [r["throughput_samples_per_s"] for r in record_rows(out.record)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)
    a = ap.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory() as d:
        for model in MODELS:
            off, on = [], []
            for r in range(a.rounds):
                # ABBA order: neither setting always runs first
                for collectors in ((False, True) if r % 2 == 0 else (True, False)):
                    (on if collectors else off).append(once(suite(model, a.min_time, collectors), Path(d)))
            for i, mode in enumerate(("infer", "train")):
                m_off = statistics.median(r[i] for r in off)
                m_on = statistics.median(r[i] for r in on)
                ratio = m_on / m_off
                ratios.append(ratio)
                print(f"{model:14s} {mode:5s} bs8: off {m_off:10.1f}  on {m_on:10.1f} samples/s  on/off {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")
    print(f"median on/off over all cases: {statistics.median(ratios):.4f} ({(statistics.median(ratios) - 1) * 100:+.2f} %)")
    # The direct cost, far less noisy than the A/B ratio on a shared machine: CPU time
    # of one sampling pass (every sampler) over the interval = share of one core taken.
    cs = CollectorSet.for_suite(suite(MODELS[0], 1, True).spec.settings)
    n = 2000
    t0 = time.thread_time()
    for _ in range(n):
        for sampler in cs.samplers:  # what the sampling thread does once per interval
            sampler.read()
    per = (time.thread_time() - t0) / n
    print(f"one sampling pass ({', '.join(s.name for s in cs.samplers)}): {per * 1e6:.0f} us CPU; "
          f"at {cs.interval:g} s interval that is {per / cs.interval * 100:.2f} % of one core "
          f"({per / cs.interval / (os.cpu_count() or 1) * 100:.2f} % of this machine's {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
