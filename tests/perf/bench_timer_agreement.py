"""Does hwbench's timing agree with torch.utils.benchmark?

BERT-base-like inference, batch 8, sequence 128, fp32, CPU. In one process, alternating
A/B: A = hwbench.timing.measure (the loop the workers use), B =
torch.utils.benchmark.Timer.adaptive_autorange. Also the same case through a real hwbench
worker process, for reference. Prints medians and the A/B ratio (bar: within 10 %).

    python tests/perf/bench_timer_agreement.py [--rounds 5] [--model encoder:base]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from torch.utils import benchmark

from hwbench import backends, env, models, runner, timing, workloads
from hwbench.spec import Case, parse_suite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="encoder:base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=3.0)
    a = ap.parse_args()

    case = Case(a.model, "infer", a.batch, "fp32", "eager", "cpu", seq_len=a.seq)
    fam, size = models.get(a.model)
    cfg = fam.sizes[size]
    torch.manual_seed(0)
    prep = backends.prepare(fam.build(cfg), case, torch.device("cpu"), fam.float_inputs)
    x, y = fam.make_batch(cfg, a.batch, case.shape, "cpu", prep.input_dtype)
    step = workloads.make_step("infer", prep, fam.loss, x, y)
    timer = timing.Timer(torch.device("cpu"))

    hw, tb = [], []
    for r in range(a.rounds):
        m = timing.measure(step, timer, warmup_iters=3, warmup_s=0, min_time_s=a.min_time, min_iters=10,
                           max_iters=100_000, repeats=1)
        hw.append(timing.latency_stats_ms(m.raw_times_s)["latency_ms_p50"])
        # Timer defaults to one thread; compare like with like, and give it as much
        # measuring time as hwbench's round had (min_iters can make that longer).
        t = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
        t = t.adaptive_autorange(min_run_time=m.window_end - m.window_start)
        tb.append(t.median * 1e3)
        print(f"round {r + 1}: hwbench {hw[-1]:.2f} ms   torch.utils.benchmark {tb[-1]:.2f} ms")

    text = f"""
[suite]
name = "agreement"
[settings]
warmup_iters = 3
min_time_s = {a.min_time}
min_iters = 10
timeout_s = 900
[[matrix]]
models = ["{a.model}"]
batch_sizes = [{a.batch}]
seq_lens = [{a.seq}]
"""
    suite = parse_suite(text)
    with tempfile.TemporaryDirectory() as d:
        rn = runner.Runner(suite, Path(d) / "r.json")
        rec = rn.run(runner.plan(suite), rn.new_record(env.fingerprint()))
    worker = rec["cases"][0]["metrics"]["latency_ms_p50"]

    med_hw, med_tb = statistics.median(hw), statistics.median(tb)
    print(f"\n{case.case_id}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"median of rounds: hwbench.timing {med_hw:.2f} ms, torch.utils.benchmark {med_tb:.2f} ms, "
          f"ratio {med_hw / med_tb:.3f} ({(med_hw / med_tb - 1) * 100:+.1f} %)")
    print(f"same case in an hwbench worker process: {worker:.2f} ms ({(worker / med_tb - 1) * 100:+.1f} % vs torch.utils.benchmark)")


if __name__ == "__main__":
    main()
