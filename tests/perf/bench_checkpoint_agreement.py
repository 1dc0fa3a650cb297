"""Does a checkpoint case's save GB/s agree with a plain torch.save + os.fsync?

A = the checkpoint case (``torch_save``, default mlp:base fp32: model + AdamW state)
through ``hwbench.run_suite`` (a real worker; save timed until the file and its folder
are fsynced). B = a fresh Python process that builds a state dict of as many bytes
(float32 tensors of the model's layer shapes, three copies: weights and AdamW's two
moments), then times ``torch.save`` to a file + ``flush`` + ``os.fsync`` in the same
folder, the same number of times, removing the file after each. Pairs alternate their
order (AB, BA, ...). Reported: both GB/s figures per pair and the median ratio; bar:
within 0.5x-2x (storage timings vary far more than compute timings).

    python tests/perf/bench_checkpoint_agreement.py [--pairs 3] [--model mlp:base] [--iters 5] [--dir DIR]
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

PLAIN = r"""
import json, os, statistics, sys, time, torch
nbytes, iters, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# float32 tensors of 16 MiB each (the last one smaller) summing to nbytes
sd, left, i = {}, nbytes // 4, 0
while left > 0:
    n = min(left, 4 * 2**20)
    sd[f"t{i}"] = torch.randn(n)
    left, i = left - n, i + 1
path = os.path.join(folder, "plain.pt")
times = []
for _ in range(iters + 1):  # the first is a warmup, as the case's first round
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        torch.save(sd, f)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    times.append(time.perf_counter() - t0)
    size = os.path.getsize(path)
    os.remove(path)
med = statistics.median(times[1:])
print(json.dumps({"save_s_p50": med, "bytes": size, "gbs": size / med / 1e9}))
"""


def case_gbs(model: str, iters: int, d: Path) -> dict:
    suite = parse_suite(f"""
[suite]
name = "ckpt-agreement"
[settings]
min_time_s = 0.001
min_iters = {iters}
max_iters = {iters}
idle_baseline_s = 0
collectors = []
checkpoint_dir = "{d}"
timeout_s = 900
[[matrix]]
models = ["{model}"]
modes = ["checkpoint"]
checkpointers = ["torch_save"]
""")
    out = hwbench.run_suite(suite, out_dir=d / "out")
    (row,) = record_rows(out.record)
    if row["status"] != "ok":
        raise SystemExit(f"checkpoint case {row['status']}: {row['reason']}")
    return {"gbs": row["checkpoint_save_gbs"], "bytes": row["checkpoint_bytes"], "fs": row["scratch_fs_type"]}


def plain_gbs(nbytes: int, iters: int, d: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", PLAIN, str(nbytes), str(iters), str(d)], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp:base")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--dir", default=None, help="the folder to write to (default: a temporary folder in .)")
    a = ap.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory(dir=a.dir or ".") as tmp:
        d = Path(tmp).resolve()
        nbytes = None
        for i in range(a.pairs):
            order = ("case", "plain") if i % 2 == 0 else ("plain", "case")
            got = {}
            for side in order:
                if side == "case" or nbytes is None:
                    got["case"] = case_gbs(a.model, a.iters, d)
                    nbytes = got["case"]["bytes"]
                if side == "plain":
                    got["plain"] = plain_gbs(nbytes, a.iters, d)
            ratios.append(got["case"]["gbs"] / got["plain"]["gbs"])
            print(f"pair {i + 1} ({' then '.join(order)}): case {got['case']['gbs']:.3f} GB/s "
                  f"({got['case']['bytes'] / 1e9:.3f} GB on {got['case']['fs']}), torch.save + fsync in a fresh "
                  f"process {got['plain']['gbs']:.3f} GB/s ({got['plain']['bytes'] / 1e9:.3f} GB); "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    med = statistics.median(ratios)
    ok = 0.5 <= med <= 2.0
    print(f"\n{a.model} torch_save, {a.pairs} pairs of {a.iters} saves: median ratio case / plain {med:.3f} "
          f"(spread {min(ratios):.3f} .. {max(ratios):.3f}); bar 0.5x-2x -> {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
