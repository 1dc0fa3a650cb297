"""``hwbench probe --collectives``: collective microbenchmarks over a torchrun group.

allreduce, allgather, reduce-scatter, broadcast and all-to-all over message sizes, each
timed on every rank (ranks aligned by a barrier before each timed call; the slowest
rank's mean time counts) and checked for correctness (known per-rank values, exact
expected results). Bandwidths follow nccl-tests (PERFORMANCE.md): ``size`` is the bytes
of the larger buffer of one rank (allgather: the gathered output; reduce-scatter: the
full input), ``algbw = size / time`` and ``busbw = algbw x factor`` with factor
``2(n-1)/n`` for allreduce, ``(n-1)/n`` for allgather, reduce-scatter and all-to-all,
1 for broadcast. GB/s are 1e9 bytes / s.

Launched as ``python -m torch.distributed.run --standalone --nproc-per-node N -m
hwbench.commands.collectives OUT.json SIZES...``; rank 0 writes OUT.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import devices

OPS = ("allreduce", "allgather", "reduce_scatter", "broadcast", "alltoall")
DEFAULT_SIZES = tuple(4 ** k * 1024 for k in range(0, 8))  # 1 KiB .. 16 MiB


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' bus bandwidth factor for ``op`` over ``n`` ranks."""
    if op == "allreduce":
        return 2 * (n - 1) / n
    if op in ("allgather", "reduce_scatter", "alltoall"):
        return (n - 1) / n
    return 1.0


def run(world_size: int, device: str = "cpu", sizes=DEFAULT_SIZES, timeout_s: float = 600) -> dict:
    """Launch the group, return rank 0's results document. Raises RuntimeError with the
    group's last output lines when it fails."""
    with tempfile.TemporaryDirectory(prefix="hwbench-coll-") as d:
        out = Path(d) / "collectives.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world_size}",
               "--max-restarts=0", "-m", "hwbench.commands.collectives", str(out), device, *map(str, sizes)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, start_new_session=True)
        if p.returncode != 0 or not out.exists():
            tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"collectives group failed (exit {p.returncode}):\n{tail}")
        return json.loads(out.read_text())


def _bench(op: str, nbytes: int, dev, n: int, rank: int, min_time_s: float = 0.1, min_iters: int = 5) -> dict:
    import torch
    import torch.distributed as dist

    elem = 4  # float32
    # per-rank element counts so that ``size`` is the larger buffer (see module docstring)
    big = max(n, nbytes // elem // n * n)  # divisible by n
    small = big // n
    size = big * elem  # the larger buffer, as every op below allocates it
    reset = lambda: None  # noqa: E731  (an op whose output is overwritten whole needs no reset)
    if op == "allreduce":
        x = torch.full((big,), float(rank + 1), device=dev)
        fn = lambda: dist.all_reduce(x)  # noqa: E731
        reset = lambda: x.fill_(float(rank + 1))  # noqa: E731
        check = lambda: bool((x == n * (n + 1) / 2).all())  # noqa: E731
    elif op == "allgather":
        inp = torch.full((small,), float(rank + 1), device=dev)
        out = torch.empty(big, device=dev)
        fn = lambda: dist.all_gather_into_tensor(out, inp)  # noqa: E731
        expect = torch.arange(1, n + 1, device=dev, dtype=torch.float32).repeat_interleave(small)
        check = lambda: bool(torch.equal(out, expect))  # noqa: E731
    elif op == "reduce_scatter":
        inp = torch.full((big,), float(rank + 1), device=dev)
        out = torch.empty(small, device=dev)
        fn = lambda: dist.reduce_scatter_tensor(out, inp)  # noqa: E731
        check = lambda: bool((out == n * (n + 1) / 2).all())  # noqa: E731
    elif op == "broadcast":
        x = torch.empty(big, device=dev)
        reset = lambda: x.fill_(42.0 if rank == 0 else -1.0)  # noqa: E731
        fn = lambda: dist.broadcast(x, src=0)  # noqa: E731
        check = lambda: bool((x == 42.0).all())  # noqa: E731
    else:  # alltoall: rank r's chunk j holds r * n + j; after it, chunk i holds i * n + r
        inp = (rank * n + torch.arange(n, device=dev, dtype=torch.float32)).repeat_interleave(small)
        out = torch.empty(big, device=dev)
        fn = lambda: dist.all_to_all_single(out, inp)  # noqa: E731
        expect = (torch.arange(n, device=dev, dtype=torch.float32) * n + rank).repeat_interleave(small)
        check = lambda: bool(torch.equal(out, expect))  # noqa: E731

    acc = devices.of_torch(dev)

    def sync():
        acc.synchronize(dev)

    try:
        reset()
        fn()
        sync()
        ok = check()
    except (RuntimeError, NotImplementedError) as e:
        return {"op": op, "size_bytes": size, "error": str(e).splitlines()[0][:300]}
    okt = torch.tensor([1.0 if ok else 0.0], device=dev)
    dist.all_reduce(okt, op=dist.ReduceOp.MIN)
    iters, total = 0, 0.0
    while True:  # the stop is rank 0's decision, broadcast: never a local condition
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        sync()
        total += time.perf_counter() - t0
        iters += 1
        # agree on stopping: rank 0's clock decides (the same iteration count everywhere)
        stop = torch.tensor([1.0 if (iters >= min_iters and total >= min_time_s) else 0.0], device=dev)
        dist.broadcast(stop, src=0)
        if stop.item():
            break
    t = torch.tensor([total / iters], device=dev, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the slowest rank's mean
    sec = t.item()
    algbw = size / sec / 1e9
    return {"op": op, "size_bytes": size, "iterations": iters, "latency_us": sec * 1e6, "algbw_gbs": algbw,
            "busbw_gbs": algbw * bus_factor(op, n), "correct": bool(okt.item())}


def main(out_path: str, device: str, sizes: list[int]) -> None:
    import torch
    import torch.distributed as dist

    kind = devices.kind_of(device)
    acc = devices.KINDS.get(kind)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = acc.torch_device(f"{kind}:{local}" if acc.indexed else kind)
    acc.set_device(dev)
    acc.init_process_group(dev)
    n, rank = dist.get_world_size(), dist.get_rank()
    results = []
    for op in OPS:
        for s in sizes:
            results.append(_bench(op, s, dev, n, rank))
            if os.environ.get("HWBENCH_DEBUG"):
                print(rank, results[-1], flush=True)
    if rank == 0:
        doc = {"format": "hwbench-collectives", "world_size": n, "backend": dist.get_backend(), "device": kind,
               "torch_version": torch.__version__, "dtype": "float32",
               "method": __doc__.split("\n\n")[1].replace("\n", " "), "results": results}
        tmp = out_path + ".tmp"
        Path(tmp).write_text(json.dumps(doc, indent=1))
        os.replace(tmp, out_path)
    dist.destroy_process_group()


def to_table(doc: dict) -> str:
    lines = [f"collectives: {doc['world_size']} ranks, {doc['backend']} on {doc['device']}, {doc['dtype']}",
             f"{'op':<15}{'size':>12}{'latency':>14}{'algbw GB/s':>12}{'busbw GB/s':>12}  ok"]
    for r in doc["results"]:
        if "error" in r:
            lines.append(f"{r['op']:<15}{r['size_bytes']:>12}  unsupported: {r['error']}")
            continue
        lines.append(f"{r['op']:<15}{r['size_bytes']:>12}{r['latency_us']:>11.1f} us{r['algbw_gbs']:>12.3f}"
                     f"{r['busbw_gbs']:>12.3f}  {'yes' if r['correct'] else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]])
