"""hwbench probe --collectives: nccl-tests bandwidth formulas and a real gloo group."""

import json

import pytest

from hwbench.commands.collectives import bus_factor
from conftest import hwbench


@pytest.mark.parametrize("op,n,factor", [("allreduce", 2, 1.0), ("allreduce", 8, 1.75), ("allgather", 4, 0.75),
                                         ("reduce_scatter", 8, 0.875), ("alltoall", 2, 0.5), ("broadcast", 8, 1.0)])
def test_bus_bandwidth_factors_are_nccl_tests(op, n, factor):
    assert bus_factor(op, n) == pytest.approx(factor)


def test_probe_collectives_reports_checked_bus_bandwidth_per_message_size():
    p = hwbench("probe", "--collectives", "--world-size", "2", "--device", "cpu", "--format", "json",
                "--max-bytes", "16384", "--quiet", timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["world_size"] == 2 and doc["backend"] == "gloo"
    allreduce = [r for r in doc["results"] if r["op"] == "allreduce"]
    assert [r["size_bytes"] for r in allreduce] == [1024, 4096, 16384]
    for r in doc["results"]:
        assert r["correct"] is True and r["latency_us"] > 0
        assert r["busbw_gbs"] == pytest.approx(r["algbw_gbs"] * bus_factor(r["op"], 2))
    assert {r["op"] for r in doc["results"]} == {"allreduce", "allgather", "reduce_scatter", "broadcast", "alltoall"}


def test_collectives_take_one_cpu_or_cuda_device():
    p = hwbench("probe", "--collectives", "--device", "mps", "--quiet")
    assert p.returncode == 2 and "--collectives" in p.stderr
