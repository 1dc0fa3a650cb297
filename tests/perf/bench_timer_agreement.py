"""Does a case measured by an hwbench worker agree with torch.utils.benchmark?

BERT-base-like inference, batch 8, sequence 128, fp32, CPU. Each pair runs, one after
the other, A = the case through ``hwbench.run_suite`` (a real worker forked from the
forkserver, collectors on, as users run it) and B = ``torch.utils.benchmark.Timer
.adaptive_autorange`` in a fresh Python process on the same model, weights and inputs,
with the same intra-op threads and the same measuring time. Pairs alternate their order
(AB, BA, ...) so neither side always runs first. Reported: each pair's A/B ratio of
medians, and the median of the per-pair ratios with its spread (min, max). Bar: the
median ratio within 3 %.

    python tests/perf/bench_timer_agreement.py [--pairs 5] [--model encoder:base] [--min-time 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import hwbench
from hwbench.analysis.derive import record_rows
from hwbench.spec import parse_suite

TIMER = r"""
import json, sys, torch
from torch.utils import benchmark
from hwbench import backends, models, workloads
from hwbench.case import Case
model, batch, seq, min_time, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
fam, size = models.get(model)
cfg = fam.sizes[size]
case = Case(model, "infer", batch, "fp32", "eager", "cpu", seq_len=seq)
torch.manual_seed(seed)                       # the worker's weights
prep = backends.prepare(fam.build(cfg), case, torch.device("cpu"), fam.float_inputs)
torch.manual_seed(seed + 1)                   # the worker's inputs
x, y = fam.make_batch(cfg, batch, case.shape, "cpu", torch.float32)
step = workloads.make_step("infer", prep, fam.loss, x, y)
for _ in range(3):
    step()                                    # the worker's warmup
# Timer defaults to one thread: compare like with like
t = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
m = t.adaptive_autorange(min_run_time=min_time)
print(json.dumps({"median_ms": m.median * 1e3, "threads": torch.get_num_threads(), "n": len(m.times)}))
"""


def worker_p50(model: str, batch: int, seq: int, min_time: float, seed: int, d: Path) -> float:
    suite = parse_suite(f"""
[suite]
name = "agreement"
[settings]
warmup_iters = 3
min_time_s = {min_time}
min_iters = 10
timeout_s = 900
seed = {seed}
idle_baseline_s = 0
check_accuracy = false
count_flops = false
[[matrix]]
models = ["{model}"]
batch_sizes = [{batch}]
seq_lens = [{seq}]
""")
    out = hwbench.run_suite(suite, out_dir=d)
    (row,) = record_rows(out.record)
    if row["status"] != "ok":
        raise SystemExit(f"worker case {row['status']}: {row['reason']}")
    return row["latency_ms_p50"]


def timer_median(model: str, batch: int, seq: int, min_time: float, seed: int) -> dict:
    r = subprocess.run([sys.executable, "-c", TIMER, model, str(batch), str(seq), str(min_time), str(seed)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="encoder:base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch

    ratios = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.pairs):
            order = ("worker", "timer") if i % 2 == 0 else ("timer", "worker")
            got = {}
            for side in order:
                if side == "worker":
                    got["worker"] = worker_p50(a.model, a.batch, a.seq, a.min_time, a.seed, Path(d))
                else:
                    got["timer"] = timer_median(a.model, a.batch, a.seq, a.min_time, a.seed)["median_ms"]
            ratios.append(got["worker"] / got["timer"])
            print(f"pair {i + 1} ({' then '.join(order)}): worker {got['worker']:.2f} ms, "
                  f"torch.utils.benchmark {got['timer']:.2f} ms, ratio {ratios[-1]:.4f}", flush=True)
    med = statistics.median(ratios)
    print(f"\n{a.model} infer bs{a.batch} seq{a.seq} fp32 cpu, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {a.pairs} pairs")
    print(f"median of per-pair ratios (worker / torch.utils.benchmark): {med:.4f} ({(med - 1) * 100:+.2f} %), "
          f"spread {min(ratios):.4f} .. {max(ratios):.4f}; bar: within 3 % -> {'met' if abs(med - 1) <= 0.03 else 'NOT met'}")


if __name__ == "__main__":
    main()
