"""hwbench: hardware-aware benchmarking for deep learning."""

__version__ = "0.1.0"


def load_results(paths):
    """Load results files into a pandas DataFrame, one row per case (see README,
    "Result columns"). Accepts one path or a list; folders are searched for ``*.json``."""
    from .results import load_results as _load

    return _load(paths)


__all__ = ["__version__", "load_results"]
