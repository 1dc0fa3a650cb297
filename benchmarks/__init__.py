"""asv benchmarks of this repository (see asv.conf.json and docs/ci.md)."""
