"""Pure functions over results: statistics and derived columns (more to come: compare,
history, pareto, scaling, cost). Nothing here measures or imports torch."""
