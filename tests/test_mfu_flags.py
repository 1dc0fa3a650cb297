"""MFU above 1 is flagged ``above_peak`` and never shown as a plain figure; a guessed or
less sure peak is flagged ``peak_uncertain``. Constructed cases with known FLOP/s."""

import pytest

from hwbench.analysis.derive import record_rows, to_frame
from hwbench.analysis.mfu import mfu_flags
from hwbench.records import Environment, Facts, Segment
from hwbench.report import format as fm
from hwbench.report.table import render_report, summary_table
from test_dataframe import _ident, ok_case, run_record

# A Zen 4 host: 2 cores x 3 GHz x 32 fp32 FLOP/cycle = 0.192 TFLOP/s (hwbench/data/cpu_uarch.csv).
ZEN4 = dict(hostname="h", cpu_cores_physical=2, cpu_freq_max_mhz=3000.0, cpu_freq_max_source="test",
            cpu_flags=["avx2", "avx512f", "fma"], cpu_vendor_id="AuthenticAMD", cpu_family=25, cpu_model_id=17,
            cpu_model="AMD EPYC 9654 96-Core Processor")
PEAK_TFLOPS = 2 * 3.0e9 * 32 / 1e12


def _row(flops_per_sample: float, **env):
    """One fp32 CPU case, batch 1, 10 ms per step, 2 threads, on the given host."""
    c = ok_case(_ident(bs=1), 10.0)
    c = c.model_copy(update={"facts": Facts(params=1000, flops_per_sample=flops_per_sample, threads_used=2)})
    rec = run_record([c])
    rec = rec.model_copy(update={"segments": [Segment(index=0, started=rec.created,
                                                      environment=Environment(**{**ZEN4, **env}))]})
    (row,) = record_rows(rec)
    return row


def test_measured_above_the_peak_is_flagged_and_marked():
    achieved = 1.5 * PEAK_TFLOPS  # FLOP/s the hardware cannot do: the peak or the FLOP count is wrong
    row = _row(achieved * 1e12 * 0.010)
    assert row["peak_tflops"] == pytest.approx(PEAK_TFLOPS) and row["mfu"] == pytest.approx(1.5)
    assert "above_peak" in row["quality_flags"] and "MFU 1.5 > 1" in row["flag_details"]
    assert fm.column("mfu")(row["mfu"]) == "150% >peak"  # never the plain "150%"
    df = to_frame([row])
    text = "\n".join(render_report(df, 200))
    assert ">peak" in text and "above_peak" in text
    assert summary_table(df)["mfu"].iloc[0] == pytest.approx(1.5)  # machine output keeps the number, with its flag


def test_below_the_peak_is_a_plain_figure():
    row = _row(0.5 * PEAK_TFLOPS * 1e12 * 0.010)
    assert row["mfu"] == pytest.approx(0.5) and "above_peak" not in row["quality_flags"]
    assert "peak_uncertain" not in row["quality_flags"]  # Zen 4 is in the table: a high-confidence peak
    assert fm.column("mfu")(row["mfu"]) == "50.0%"


def test_exactly_the_peak_is_not_above_it():
    assert mfu_flags(1.0, 1.0, 1.0, "s", "high") == []
    assert [f for f, _ in mfu_flags(1.0000001, 1.0, 1.0, "s", "high")] == ["above_peak"]


def test_a_guessed_cpu_peak_is_flagged_uncertain():
    row = _row(0.5 * PEAK_TFLOPS * 1e12 * 0.010, cpu_vendor_id="HygonGenuine", cpu_family=24, cpu_model_id=2)
    assert "peak_uncertain" in row["quality_flags"] and "a guess" in row["flag_details"]
    assert row["peak_source"].startswith("cpu formula (guess:")
