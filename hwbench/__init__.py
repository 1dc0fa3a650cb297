"""hwbench: hardware-aware benchmarking for deep learning."""

__version__ = "0.1.0"


def load_results(paths, warn=None):
    """Load results files into a pandas DataFrame, one row per case (see README,
    "Results files and columns"). Accepts one path or a list; folders are searched for
    ``*.json`` (JSON files there that are not results files are skipped with a warning)."""
    from .analysis.derive import load_results as _load

    return _load(paths, warn)


def run_suite(suite, **kwargs):
    """Run a suite and write one results file; see :func:`hwbench.api.run_suite`."""
    from .api import run_suite as _run

    return _run(suite, **kwargs)


__all__ = ["__version__", "load_results", "run_suite"]
