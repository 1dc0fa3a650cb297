"""The storage behind a folder: its mount, filesystem type and block device, and
whether the kernel calls that device rotational; and the scratch folder of data and
checkpoint cases (``checkpoint_dir``), checked before any worker starts.

Linux only: the facts come from ``/proc/mounts`` and ``/sys/class/block/<dev>/queue/
rotational``; where the kernel does not say (another OS, an overlay or network
filesystem, a device-mapper stack without the file), the fact is null. The parsing is
pure (:func:`parse_mounts`, :func:`mount_for`) and tested on constructed text.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MOUNTS = Path("/proc/mounts")
SYS_BLOCK = Path("/sys/class/block")


@dataclass(frozen=True)
class Mount:
    """One line of /proc/mounts: the device (``/dev/sda1``, ``overlay``, ``tmpfs``),
    where it is mounted, its filesystem type and mount options."""

    device: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...] = ()


def _unescape(field: str) -> str:
    # the kernel writes space, tab, newline and backslash in octal (\040 ...)
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts text -> its mounts, in file order (lines that are not six fields
    are skipped)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        out.append(Mount(_unescape(parts[0]), _unescape(parts[1]), parts[2], tuple(parts[3].split(","))))
    return out


def mount_for(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, symlinks resolved by the caller): the
    longest mount point that is ``path`` or one of its parents; of equal ones the last
    listed (a later mount hides an earlier one at the same point)."""
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        inside = path == mp or path.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def rotational(device: str, sys_block: Path = SYS_BLOCK) -> bool | None:
    """Whether the kernel calls block device ``device`` (``/dev/sda1``) rotational: its
    queue's ``rotational`` file, or its parent disk's for a partition. None where the
    device is no block device the kernel lists (overlay, tmpfs, network) or says
    nothing."""
    if not device.startswith("/dev/"):
        return None
    name = Path(os.path.realpath(device)).name if sys_block == SYS_BLOCK else Path(device).name
    node = sys_block / name
    for q in (node / "queue" / "rotational", node.resolve().parent / "queue" / "rotational"):
        try:
            return q.read_text().strip() == "1"
        except OSError:
            continue
    return None


def describe(path: str | Path, role: str, mounts_text: str | None = None,
             sys_block: Path = SYS_BLOCK) -> dict[str, Any]:
    """The storage facts of folder ``path`` (records.StorageInfo fields): ``role``
    ("results", "scratch"), the path, its mount point, filesystem type, device and
    rotational flag; null where this machine does not say."""
    resolved = os.path.realpath(path)
    out: dict[str, Any] = {"role": role, "path": resolved, "mount_point": None, "fs_type": None, "device": None,
                           "rotational": None}
    if mounts_text is None:
        try:
            mounts_text = MOUNTS.read_text()
        except OSError:
            return out
    m = mount_for(resolved, parse_mounts(mounts_text))
    if m is not None:
        out.update(mount_point=m.mount_point, fs_type=m.fs_type, device=m.device,
                   rotational=rotational(m.device, sys_block))
    return out


# ------------------------------------------------------------------- the scratch folder
def check_scratch(folder: Path, where: str) -> None:
    """A ConfigError (one line, ``where`` naming the field) unless ``folder`` exists, is
    a folder, is on a writable filesystem and a folder can be made in it."""
    if not folder.exists():
        raise ConfigError(f"{where}: {folder} does not exist; allowed: an existing, writable folder")
    if not folder.is_dir():
        raise ConfigError(f"{where}: {folder} is not a folder; allowed: an existing, writable folder")
    if hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise ConfigError(f"{where}: {folder} is on a read-only filesystem; allowed: an existing, writable folder")
    try:
        Path(tempfile.mkdtemp(prefix=".hwbench-probe-", dir=folder)).rmdir()
    except OSError as e:
        raise ConfigError(f"{where}: {folder} is not writable ({e.strerror or e}); "
                          "allowed: an existing, writable folder") from None


def resolve_scratch(suite: Any, results_path: Path) -> Any:
    """The suite (a LoadedSuite) with ``settings.checkpoint_dir`` resolved to an absolute
    folder and checked: the one it names, or -- where it names none and the suite has
    data or checkpoint cases -- the results file's folder (each case makes its own
    temporary folder there, on the results file's filesystem, and removes it)."""
    from dataclasses import replace

    from . import IO_MODES

    settings = suite.spec.settings
    has_io = any(c.mode in IO_MODES for c in suite.cases)
    if settings.checkpoint_dir is None and not has_io:
        return suite
    where = f"{suite.path}: settings.checkpoint_dir"
    if settings.checkpoint_dir is None:
        folder = results_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        where = f"{suite.path}: settings.checkpoint_dir (default: the results folder)"
    else:
        folder = Path(settings.checkpoint_dir).expanduser()
    check_scratch(folder, where)
    folder = Path(os.path.realpath(folder))
    spec = suite.spec.model_copy(update={"settings": settings.model_copy(update={"checkpoint_dir": str(folder)})})
    return replace(suite, spec=spec)


def environment_facts(suite: Any, results_path: Path) -> list[dict[str, Any]]:
    """records.StorageInfo of the results folder and, where the suite has one, the
    scratch folder (``settings.checkpoint_dir``, resolved by :func:`resolve_scratch`)."""
    out = [describe(Path(results_path).parent, "results")]
    folder = suite.spec.settings.checkpoint_dir
    if folder is not None:
        out.append(describe(folder, "scratch"))
    return out
