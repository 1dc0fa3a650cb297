"""``hwbench list peaks``: accelerator rows and CPU microarchitecture rows, with sources,
as JSON, CSV and a table that fits 80 columns (in process: fast tier)."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from hwbench.cli import cli as group

NEW_DEVICES = {"B200", "GB200", "H20", "RTX PRO 6000 Blackwell", "MI325X", "MI355X", "Gaudi 3", "TPU v5e",
               "TPU v5p", "TPU v6e"}


def run(*args, columns="80"):
    r = CliRunner().invoke(group, ["list", "peaks", *args], env={"COLUMNS": columns})
    assert r.exit_code == 0, r.output
    return r.stdout


def test_json_has_the_rows_with_sources():
    rows = json.loads(run("--format", "json"))
    acc = {r["device"]: r for r in rows if r["kind"] == "accelerator"}
    cpu = {r["uarch"]: r for r in rows if r["kind"] == "cpu"}
    assert NEW_DEVICES <= set(acc) and {"H100", "MI300X"} <= set(acc)
    assert all(r["source"] and len(r["date"]) == 10 for r in rows)
    assert acc["B200"]["fp8_tflops"] == 4500.0 and acc["TPU v5e"]["fp32_tflops"] is None  # not published: empty
    assert acc["H20"]["confidence"] == "low" and acc["MI325X"]["confidence"] == "high"
    # the bar: fp32 FLOP per cycle per core
    assert {k: cpu[k]["fp32_flops_per_cycle"] for k in ("Zen 4", "Sapphire Rapids", "Neoverse V2", "Neoverse N1")} \
        == {"Zen 4": 32, "Sapphire Rapids": 64, "Neoverse V2": 32, "Neoverse N1": 16}
    assert cpu["Sapphire Rapids"]["amx_bf16_flops_per_cycle"] == 1024 and cpu["Zen 5"]["fp32_flops_per_cycle"] == 64


def test_csv_has_both_kinds():
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    assert {r["kind"] for r in rows} == {"accelerator", "cpu"}
    assert next(r for r in rows if r.get("uarch") == "Neoverse V1")["fp32_flops_per_cycle"] == "32"


@pytest.mark.parametrize("columns", ["80", "120"])
def test_table_fits_the_width_and_names_sources(columns):
    out = run(columns=columns)
    assert max(map(len, out.splitlines())) <= int(columns)
    assert "RTX PRO 6000 Blackwell**" in out and "B200*" in out  # confidence marked
    assert "sources:" in out and "Neoverse V2 (implementer 0x41 part 0xd4f): Arm" in out
    zen4 = next(line for line in out.splitlines() if line.startswith("Zen 4 "))
    assert zen4.split()[2:4] == ["32", "16"]  # fp32, fp64 FLOP/cycle/core
