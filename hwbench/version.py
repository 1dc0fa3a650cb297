"""The version of hwbench, in a leaf module: the package facade, the environment record
and the HTML report read it without importing each other."""

__version__ = "0.1.0"
