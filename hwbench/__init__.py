"""hwbench: hardware-aware benchmarking for deep learning."""

from .version import __version__


def load_results(paths, warn=None):
    """Load results files into a pandas DataFrame, one row per case, with a stable,
    typed schema: every column of docs/reference/columns.md (docs/results.md) is in
    every frame (``hwbench.analysis.derive.SCHEMA``). Accepts one path or a list;
    folders are searched for ``*.json`` (JSON files there that are not results files
    are skipped with a warning)."""
    from .analysis.frame import load_results as _load  # each file read a case at a time

    return _load(paths, warn)


def load_samples(path, case_id, sampler=None):
    """One case's collector time series as a DataFrame: ``sampler``, ``t_s`` (s from the
    start of the timed window) and the readings, units in the names; see
    :func:`hwbench.analysis.derive.load_samples`."""
    from .analysis.derive import load_samples as _load

    return _load(path, case_id, sampler)


def run_suite(suite, **kwargs):
    """Run a suite and write one results file; see :func:`hwbench.api.run_suite`."""
    from .api import run_suite as _run

    return _run(suite, **kwargs)


__all__ = ["__version__", "load_results", "load_samples", "run_suite"]
