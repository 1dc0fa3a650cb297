"""Quality flags of a case's MFU (model FLOP utilisation = achieved FLOP/s over the dense
peak, :mod:`hwbench.peaks`).

* ``above_peak``: MFU above 1. A case cannot beat the hardware's peak, so either the
  peak is wrong (a CPU whose microarchitecture the table does not know, a matrix unit the
  formula does not count, a datasheet row for another form factor) or the FLOP count is
  (a model formula counting work the kernels skip). Reports never show such an MFU as a
  plain figure: :func:`hwbench.report.format.mfu` marks it.
* ``peak_uncertain``: the peak is a guess (a CPU not in the microarchitecture table) or a
  datasheet row marked medium / low confidence; the detail says which.
"""

from __future__ import annotations

# MFU above this is flagged and marked in reports: strictly above the peak.
ABOVE_PEAK = 1.0


def mfu_flags(mfu: float | None, achieved_tflops: float | None, peak_tflops: float | None,
              peak_source: str | None, confidence: str | None) -> list[tuple[str, str]]:
    """The (flag, detail) pairs of one case's MFU; [] when there is nothing to say."""
    out: list[tuple[str, str]] = []
    if mfu is not None and mfu > ABOVE_PEAK:
        out.append(("above_peak", f"MFU {mfu:.3g} > 1: {achieved_tflops:.4g} TFLOP/s measured against a peak of "
                                  f"{peak_tflops:.4g} TFLOP/s ({peak_source}); the peak or the model's FLOP "
                                  "count is wrong for this case"))
    if peak_tflops is not None and confidence and confidence != "high":
        what = "a guess (CPU not in the microarchitecture table)" if confidence == "guess" \
            else f"{confidence} confidence"
        out.append(("peak_uncertain", f"the peak is {what}: MFU is indicative"))
    return out
