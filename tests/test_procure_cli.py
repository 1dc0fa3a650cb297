"""``hwbench procure`` end to end through the real CLI in a subprocess: exit codes,
one-line errors, a terminal table that fits 80 columns, CSV with unit-carrying column
names whose numbers equal the formulas, markdown, the ranking and the training
projection."""

import io

import pandas as pd
import pytest

from hwbench import load_results
from conftest import hwbench
from test_cost import EXAMPLE, MIX, TWO_MACHINES, case, write

RENT = """
[defaults]
electricity_usd_per_kwh = 0.15
pue = 1.3
carbon_g_per_kwh = 400
lifetime_years = 4
utilization = 0.8

[[machine]]
match = "AMD EPYC*"
usd_per_hour = 0.8
source = "test rate"
date = 2026-10-15
"""


@pytest.fixture
def rent(tmp_path):
    p = tmp_path / "rent.toml"
    p.write_text(RENT)
    return p


def fits(text: str, width: int = 80) -> None:
    long = [ln for ln in text.splitlines() if len(ln) > width]
    assert not long, long


def test_device_without_price_exits_2_with_one_line_naming_device_and_file(tmp_path):
    p = tmp_path / "intel.toml"
    p.write_text(RENT.replace("AMD EPYC*", "Intel*"))
    r = hwbench("procure", EXAMPLE, "--prices", p)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and r.stdout == ""
    assert lines[0].startswith(f"hwbench: error: {p}: no price for device 'AMD EPYC'")
    assert "--skip-unpriced" in lines[0]
    # --skip-unpriced: the cases are left out, with a warning; nothing left here is an error too
    r = hwbench("procure", EXAMPLE, "--prices", p, "--skip-unpriced")
    assert r.returncode == 2
    assert "warning:" in r.stderr and "no case ran ok on a priced device" in r.stderr
    r = hwbench("procure", EXAMPLE, "--prices", "catalog")
    assert r.returncode == 2 and "hwbench/data/prices.csv: no price for device 'AMD EPYC'" in r.stderr


def test_table_fits_80_columns_and_marks_estimated_figures(rent):
    r = hwbench("procure", EXAMPLE, "--prices", rent, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    fits(r.stdout)
    assert "AMD EPYC @ vm: rented at $0.800/h" in r.stdout
    assert "~" in r.stdout and "estimated energy" in r.stdout
    assert "USD/1M" in r.stdout and "energy/1M" in r.stdout and "CO2e/1M" in r.stdout


def test_csv_columns_carry_units_and_equal_the_formulas(rent):
    r = hwbench("procure", EXAMPLE, "--prices", rent, "--format", "csv")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(io.StringIO(r.stdout)).set_index("case_id")
    for c in ("usd_per_hour", "cost_usd_per_1m_samples", "energy_kwh_per_1m_samples", "co2_g_per_1m_samples",
              "samples_per_usd", "samples_per_j", "tco_usd", "price_source", "price_date", "quality_flags"):
        assert c in got.columns
    df = load_results(EXAMPLE)
    for row in df[df["status"] == "ok"].to_dict("records"):
        g = got.loc[row["case_id"]]
        assert g["cost_usd_per_1m_samples"] == pytest.approx(0.8 * 1e6 / (row["throughput_samples_per_s"] * 3600))
        assert g["energy_kwh_per_1m_samples"] == pytest.approx(row["energy_per_sample_j"] * 1e6 / 3.6e6 * 1.3)
        assert g["co2_g_per_1m_samples"] == pytest.approx(row["energy_per_sample_j"] * 1e6 / 3.6e6 * 1.3 * 400)
        assert "energy_estimated" in g["quality_flags"]


def test_markdown(rent):
    r = hwbench("procure", EXAMPLE, "--prices", rent, "--format", "markdown")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("## AMD EPYC @ vm: rented at $0.800/h")
    assert "| case" in r.stdout and "USD/1M samples" in r.stdout and "samples/USD" in r.stdout


def test_ranking_of_two_machines_through_the_cli(tmp_path):
    write(tmp_path, "hostA", [case("mlp:tiny", "infer", 0.001, device_name="GPU-A"),
                              case("encoder:tiny", "infer", 0.010, device_name="GPU-A"),
                              case("cnn:tiny", "train", 0.100, device_name="GPU-A")])
    write(tmp_path, "hostB", [case("mlp:tiny", "infer", 0.002, device_name="GPU-B", power_w=50),
                              case("encoder:tiny", "infer", 0.005, device_name="GPU-B", power_w=50),
                              case("cnn:tiny", "train", 0.1, device_name="GPU-B", status="skipped")])
    (tmp_path / "p.toml").write_text(TWO_MACHINES)
    (tmp_path / "mix.toml").write_text(MIX)
    r = hwbench("procure", tmp_path / "hostA.json", tmp_path / "hostB.json", "--prices", tmp_path / "p.toml",
                "--mix", tmp_path / "mix.toml")
    assert r.returncode == 0, r.stderr
    fits(r.stdout)
    assert "Ranking by perf_per_usd (mix known" in r.stdout
    words = " ".join(r.stdout.split())  # the terminal text is wrapped at 80 columns
    assert "GPU-B @ hostB could not run (20 % of the mix): cnn:tiny/train/bs1/bf16/eager (skipped)" in words
    assert "'nothing:*' matches no case" in r.stderr
    r = hwbench("procure", tmp_path / "hostA.json", tmp_path / "hostB.json", "--prices", tmp_path / "p.toml",
                "--mix", tmp_path / "mix.toml", "--format", "csv")
    rk = pd.read_csv(io.StringIO(r.stdout))
    assert list(rk["machine"]) == ["GPU-B @ hostB", "GPU-A @ hostA"]
    assert list(rk["rank"]) == [1, 2]
    assert {"throughput_norm", "perf_per_usd_norm", "perf_per_w_norm", "cost_usd_per_1m_samples", "cases_not_run",
            "price_sources"} <= set(rk.columns)


def test_training_projection_through_the_cli(rent):
    r = hwbench("procure", EXAMPLE, "--prices", rent, "--train", "decoder:xl", "--tokens", "300e9", "--devices", "64")
    assert r.returncode == 0, r.stderr
    fits(r.stdout)
    assert "Training decoder:xl" in r.stdout and "Assumptions:" in r.stdout
    assert "scaling_assumed" in r.stdout and "mfu_from_other_size" in r.stdout
    r = hwbench("procure", EXAMPLE, "--prices", rent, "--train", "decoder:xl", "--tokens", "300e9", "--format", "csv")
    tr = pd.read_csv(io.StringIO(r.stdout))
    assert tr.iloc[0]["train_flops"] == pytest.approx(6 * 1557611200 * 300e9)
    assert {"time_h", "energy_kwh", "cost_usd", "co2_kg", "device_hours", "mfu"} <= set(tr.columns)


@pytest.mark.parametrize("args,needle", [
    (["--tokens", "1e9"], "--tokens, --params and --scaling-efficiency go with --train MODEL"),
    (["--train", "decoder:xl"], "--train needs --tokens D"),
    (["--train", "nope:1", "--tokens", "1e9"], "--train: unknown model family 'nope'"),
    (["--mix", "missing.toml"], "missing.toml: cannot read mix file"),
])
def test_argument_errors_are_one_line_exit_2(rent, args, needle):
    r = hwbench("procure", EXAMPLE, "--prices", rent, *args)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_invalid_price_file_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(RENT.replace("usd_per_hour = 0.8", "usd_per_hour = 0.8\nprice_usd = 1"))
    r = hwbench("procure", EXAMPLE, "--prices", p)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"hwbench: error: {p}: machine[0]: give exactly one of price_usd (owning) or "
                                "usd_per_hour (renting)")


def test_a_parallel_results_file_is_priced_per_group_through_the_cli(tmp_path):
    """The issue's bar through the real command: cost per 1M samples of a 2-rank case =
    2 x the device's hourly price x 1e6 / (group throughput x 3600), from the CSV."""
    from test_cost import _group

    one = case("decoder:tiny", "train", 0.010, device_name="GPU-A", bs=8)
    two = _group(case("decoder:tiny", "train", 0.0147, device_name="GPU-A", power_w=200, bs=8), "ddp", 2)
    write(tmp_path, "h", [one, _group(one, "ddp", 1), two])
    prices = tmp_path / "p.toml"
    prices.write_text(TWO_MACHINES)
    r = hwbench("procure", tmp_path / "h.json", "--prices", prices, "--format", "csv")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(io.StringIO(r.stdout)).set_index("case_id")
    g = got.loc[two.case_id]
    assert g["devices"] == 2 and g["throughput_samples_per_s"] == pytest.approx(16 / 0.0147)
    assert g["cost_usd_per_1m_samples"] == pytest.approx(2 * 2.0 * 1e6 / (g["throughput_samples_per_s"] * 3600))
    assert got.loc[one.case_id, "cost_usd_per_1m_samples"] == pytest.approx(2.0 * 1e6 / (800 * 3600))
    t = hwbench("procure", tmp_path / "h.json", "--prices", prices, env={"COLUMNS": "80"})
    assert t.returncode == 0, t.stderr
    fits(t.stdout)
    assert "rented at $2.00/h per device" in t.stdout and "priced as their group of 2 devices" in t.stdout
