"""Does ``hwbench probe --device cpu`` agree with independent measurements?

Each pair runs, one after the other in alternating order (AB, BA, ...):

* A: ``hwbench probe --device cpu --format json`` (the real command, quick settings) in a
  subprocess: its ``gemm_tflops["fp32"]``, ``memory_bandwidth_gbs`` and wall time;
* B: in a fresh Python process, torch.utils.benchmark timing a 2048^3 fp32 matmul
  (``blocked_autorange``, torch's default intra-op threads, as the probe's headline) and
  a 64 MiB tensor copy (``dst.copy_(src)``, read + written bytes: 2 x 64 MiB per call).

Reported: per pair A/B for GEMM and bandwidth, and the median of the ratios. Bars (issue
14): GEMM median ratio >= 0.9; bandwidth median ratio within 0.7-1.6; probe wall time
< 60 s. With ``--smoke``, then runs the smoke suite with the last profile and reports
every case's roofline fraction and any case above its roof (bar: none).

    python tests/perf/bench_probe_agreement.py [--pairs 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = r"""
import json, torch
from torch.utils import benchmark
n = 2048
a, b = torch.randn(n, n), torch.randn(n, n)
t = benchmark.Timer(stmt="a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
m = t.blocked_autorange(min_run_time=3)
gemm = 2 * n ** 3 / m.median / 1e12
size = 64 * 2 ** 20
src, dst = torch.ones(size // 4), torch.empty(size // 4)
dst.copy_(src)
c = benchmark.Timer(stmt="dst.copy_(src)", globals={"src": src, "dst": dst}, num_threads=torch.get_num_threads())
mc = c.blocked_autorange(min_run_time=2)
print(json.dumps({"gemm_tflops": gemm, "copy_gbs": 2 * size / mc.median / 1e9, "threads": torch.get_num_threads()}))
"""


def probe(out: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hwbench.cli", "probe", "--device", "cpu", "--format", "json",
                        "--quiet", "--out", str(out)], capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout)
    doc["wall_s"] = time.perf_counter() - t0
    return doc


def reference() -> dict:
    r = subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def smoke(profiles: Path) -> None:
    import hwbench
    from hwbench.analysis.derive import record_rows
    from hwbench.analysis.roofline import roofline_columns

    out = hwbench.run_suite("smoke", out_dir=profiles.parent)
    rec = out.record
    print(f"\nsmoke run {out.path} (exit {out.exit_code}), profile "
          f"{rec.segments[0].machine_profile.profile_id if rec.segments[0].machine_profile else None}")
    above, missing, fracs = [], [], []
    for c, r in zip(rec.cases, record_rows(rec)):
        if c.status != "ok":
            continue
        cols = roofline_columns(r, rec.segments[c.segment].machine_profile, device=c.device_resolved)
        if any(cols[k] is None for k in ("mfu_achievable", "arithmetic_intensity", "roofline_fraction")):
            missing.append((c.case_id, cols["roofline_reason"]))
        fracs.append(cols["roofline_fraction"] or 0)
        if cols["above_roofline"]:
            above.append((c.case_id, cols["roofline_fraction"]))
        print(f"  {c.case_id:55s} AI {cols['arithmetic_intensity'] or 0:7.2f} FLOP/B  "
              f"mfu_achievable {cols['mfu_achievable'] or 0:6.3f}  roofline_fraction {cols['roofline_fraction'] or 0:6.3f}"
              f"  {cols['roofline_limit']}")
    print(f"ok cases {len(fracs)}, missing columns {len(missing)} {missing}, above the roof {len(above)} {above}, "
          f"max roofline_fraction {max(fracs):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="hwbench-probe-bench-")) / "results" / "profiles"
    g_ratio, b_ratio, walls = [], [], []
    for i in range(args.pairs):
        if i % 2 == 0:
            a, b = probe(d), reference()
        else:
            b, a = reference(), probe(d)
        g = a["gemm_tflops"]["fp32"] / b["gemm_tflops"]
        w = a["memory_bandwidth_gbs"] / b["copy_gbs"]
        g_ratio.append(g)
        b_ratio.append(w)
        walls.append(a["wall_s"])
        print(f"pair {i} ({'AB' if i % 2 == 0 else 'BA'}): gemm fp32 probe {a['gemm_tflops']['fp32'] * 1e3:.1f} vs "
              f"torch.utils.benchmark 2048^3 {b['gemm_tflops'] * 1e3:.1f} GFLOP/s (x{g:.3f}); bandwidth probe "
              f"{a['memory_bandwidth_gbs']:.2f} vs 64 MiB copy {b['copy_gbs']:.2f} GB/s (x{w:.3f}); "
              f"probe wall {a['wall_s']:.1f} s")
    gm, bm = statistics.median(g_ratio), statistics.median(b_ratio)
    print(f"median ratios: gemm x{gm:.3f} (bar >= 0.9: {'PASS' if gm >= 0.9 else 'FAIL'}), bandwidth x{bm:.3f} "
          f"(bar 0.7-1.6: {'PASS' if 0.7 <= bm <= 1.6 else 'FAIL'}); probe wall max {max(walls):.1f} s "
          f"(bar < 60 s: {'PASS' if max(walls) < 60 else 'FAIL'})")
    if args.smoke:
        smoke(d)


if __name__ == "__main__":
    main()
