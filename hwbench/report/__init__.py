"""Reports built from results files (never from live objects)."""

from .table import summary_table

__all__ = ["summary_table"]
