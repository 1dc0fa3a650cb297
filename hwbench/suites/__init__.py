"""Suite files shipped with hwbench (package data; `hwbench list suites`)."""
