"""Registry entries that live in modules of their own (docs/architecture.md, "Where
each kind of change goes"): a module here registers its entries with its registry and
is named in that registry's module list (``hwbench.precisions.PRECISION_MODULES``), which
imports it on the registry's first read. Modules here may import the registries and
the leaf values only (layer 2)."""
