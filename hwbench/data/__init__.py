"""Data shipped with hwbench (read with importlib.resources): tables with one row per
item and ``source`` / ``date`` columns next to each number."""
