"""Exports: hwbench's numbers sent to the tools teams already watch.

One registered :class:`Target` per destination (``hwbench export --to NAME``):
``prometheus`` (a textfile for node_exporter's textfile collector), ``pushgateway``
(Prometheus Pushgateway), ``mlflow`` and ``wandb`` (optional extras). Every target reads
the per-case frame of :func:`hwbench.analysis.derive.load_results` (the store's cached
frame for folders) and the results files it names. docs/store.md lists the metric names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UserError
from ..registry import Registry


@dataclass(frozen=True)
class Target:
    """A destination: ``dest`` names what ``--to NAME DEST`` takes (FILE, URL, or
    None when it takes none), ``extra`` the pip extra it needs (None: core), and
    ``send(frame, dest, options) -> str`` exports and returns a one-line summary."""

    name: str
    dest: str | None
    extra: str | None
    send: Callable[[Any, str | None, dict[str, Any]], str]
    help: str = ""


# each target in a module of its own, imported on the registry's first read
TARGETS: Registry[Target] = Registry("export target", ("hwbench.export.prometheus", "hwbench.export.tracking"))


def need(module: str, extra: str):
    """Import ``module`` or raise a one-line UserError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"--to {extra} needs the {module} package, which is not installed: "
                        f'pip install "hwbench[{extra}]"') from None

