"""Feeding and saving the accelerator: input-pipeline (``data``) and checkpoint
(``checkpoint``) cases, beside the model steps (infer / train / generate).

* ``mode = "data"`` (:mod:`.data`): a model family's input pipeline -- files written
  once per case in a scratch folder (JPEG images for image families, pre-tokenised
  shards for sequence families), read back through ``torch.utils.data.DataLoader``
  and copied to the device -- timed per batch delivered.
* ``mode = "checkpoint"`` (:mod:`.checkpoint`): save and load of the model and its
  optimizer state with one of :data:`CHECKPOINTERS`, every file flushed (fsync)
  before the clock stops.
* :mod:`.sharded`: checkpoint cases with ``parallelism`` fsdp or tp, saved and loaded
  by every rank of the case's torchrun group (:data:`SHARDED_STRATEGIES`).
* :mod:`.storage`: the filesystem and block device behind a folder.

This module is torch-free (the suite loader imports it to validate modes and
checkpointer names); the torch code lives in :mod:`.data` and :mod:`.checkpoint`,
imported by the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import Registry

IO_MODES = ("data", "checkpoint")
# shape kind of a family -> the files its data pipeline reads
DATA_FILES = {"image_size": "JPEG images", "seq_len": "pre-tokenised int32 shards"}
SCRATCH_PREFIX = "hwbench-scratch-"


def modes_of(fam: Any) -> tuple[str, ...]:
    """Every mode a model family runs: its declared model steps, ``data`` where it has
    a pipeline (an image or sequence input, :data:`DATA_FILES`) and ``checkpoint``
    (any model has weights and optimizer state to save)."""
    extra = ("data",) if fam.shape_kind in DATA_FILES else ()
    return tuple(fam.modes) + extra + ("checkpoint",)


@dataclass(frozen=True)
class Checkpointer:
    """A way to save and load a state dict: ``name`` (what suites write),
    ``description``; ``needs`` names the torch attribute it calls (checked by
    :meth:`requires`, so an older torch skips the case with the reason)."""

    name: str
    description: str
    needs: str | None = None

    def requires(self, device: Any, case: Any) -> str | None:
        if self.needs is None:
            return None
        import importlib

        mod, _, attr = self.needs.rpartition(".")
        try:
            ok = hasattr(importlib.import_module(mod), attr)
        except ImportError:
            ok = False
        return None if ok else f"checkpointer {self.name!r} needs {self.needs}, which this torch lacks"


CHECKPOINTERS: Registry[Checkpointer] = Registry("checkpointer")
# parallel checkpoint cases (:mod:`.sharded`): the strategies whose ranks hold shards of
# the state, and the checkpointers that write torch.distributed.checkpoint's sharded
# format (torch_save writes one whole state from one process: not these)
SHARDED_STRATEGIES = ("fsdp", "tp")
SHARDED_CHECKPOINTERS = ("dcp", "dcp_async")
CHECKPOINTERS.register(Checkpointer("torch_save", "torch.save of the whole state to one file, then fsync"))
CHECKPOINTERS.register(Checkpointer(
    "dcp", "torch.distributed.checkpoint.save (FileSystemWriter, a file per rank), then fsync of every file",
    needs="torch.distributed.checkpoint.save"))
CHECKPOINTERS.register(Checkpointer(
    "dcp_async", "torch.distributed.checkpoint.async_save: the step is blocked while the state is staged; "
    "the save time runs until the background write is done and fsynced",
    needs="torch.distributed.checkpoint.async_save"))


def sharded_requires(case: Any) -> str | None:
    """Why parallel checkpoint ``case`` cannot run (the planner's check), or None."""
    if case.parallelism not in SHARDED_STRATEGIES:
        return (f"{case.parallelism}: checkpoint cases run sharded, with parallelism "
                f"{' or '.join(SHARDED_STRATEGIES)} (got {case.parallelism!r})")
    kind = case.checkpointer or "torch_save"
    if kind not in SHARDED_CHECKPOINTERS:
        return (f"{case.parallelism}: checkpointer {kind!r} is not a sharded format; "
                f"parallel checkpoint cases take {' or '.join(SHARDED_CHECKPOINTERS)}")
    return None


def check_sharded(parallelism: list[str], checkpointers: list[str] | None, where: str) -> None:
    """A checkpoint block's parallel cases save sharded: every strategy other than
    ``none`` is one of :data:`SHARDED_STRATEGIES` and then every checkpointer (default
    torch_save) one of :data:`SHARDED_CHECKPOINTERS`. Raises ConfigError (one line)."""
    from ..errors import ConfigError

    par = [p for p in parallelism if p != "none"]
    if not par:
        return
    bad = [p for p in par if p not in SHARDED_STRATEGIES]
    if bad:
        raise ConfigError(f"{where}.parallelism: checkpoint cases save sharded with "
                          f"{' or '.join(SHARDED_STRATEGIES)}, not {', '.join(bad)}; put other strategies' "
                          "train cases in a block of their own")
    bad = [c for c in checkpointers or ["torch_save"] if c not in SHARDED_CHECKPOINTERS]
    if bad:
        raise ConfigError(f"{where}.checkpointers: parallel checkpoint cases ({', '.join(par)}) take "
                          f"{' or '.join(SHARDED_CHECKPOINTERS)}; {', '.join(bad)} is not a sharded format "
                          "(put torch_save cases in a block with parallelism = [\"none\"])")
