"""Output paths checked before a command starts its work: one line naming the option and
what is wrong (a file where a folder is needed, a read-only or missing filesystem, no
permission), exit code 2, instead of a traceback after minutes of measuring.

Every command that writes a file calls :func:`output_file` or :func:`output_folder`
first, and :func:`write_error` for an error of the write itself (a disk that filled up
meanwhile).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

from .errors import UserError


def _blocker(p: Path) -> Path | None:
    """The first existing path on the way to ``p`` that is not a folder (p itself
    included), or None."""
    for q in [*reversed(p.parents), p]:
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                return q
        else:
            return None
    return None


def write_error(option: str, path, e: OSError) -> UserError:
    """The one-line error of a failed write (or of the checks below)."""
    why = e.strerror or str(e) or type(e).__name__
    return UserError(f"{option} {path}: cannot write: {why}")


def _try_folder(p: Path) -> None:
    """Create folder ``p`` (with its parents) if missing, then create and remove a file
    in it: the only check that sees read-only mounts, ACLs and pseudo-filesystems."""
    p.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hwbench-write-check.", dir=p)
    os.close(fd)
    os.unlink(tmp)


def output_folder(path, option: str) -> Path:
    """Check that files can be written into folder ``path`` (created if missing).
    Raises UserError naming ``option``."""
    p = Path(path)
    try:
        block = _blocker(p)
        if block is None:
            _try_folder(p)
    except OSError as e:  # read-only, no permission, a name too long for the filesystem, ...
        raise write_error(option, path, e) from None
    if block is not None:
        what = "is a file, not a folder" if block == p else f"{block} is a file, not a folder"
        raise UserError(f"{option} {path}: {what}")
    return p


def output_file(path, option: str, *, new: bool = False) -> Path:
    """Check that file ``path`` can be written (its folder is created if missing): not
    a folder, not an existing file with ``new``, not read-only. Raises UserError naming
    ``option``."""
    p = Path(path)
    try:
        if p.is_dir():
            raise UserError(f"{option} {path}: is a folder; name a file")
        if new and (p.exists() or p.is_symlink()):
            raise UserError(f"{option} {path}: exists; choose a new file")
        block = _blocker(p.parent)
        if block is not None:
            raise UserError(f"{option} {path}: {block} is a file, not a folder")
        _try_folder(p.parent)
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:  # read-only, no permission, a name too long for the filesystem, ...
        raise write_error(option, path, e) from None
    return p


# ---------------------------------------------------------------------- atomic writes
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, record: BaseModel) -> None:
    """Write ``record`` (a results record, or any pydantic record such as a machine
    profile) as JSON so that ``path`` always holds either the old or the new complete
    file: temporary file in the same folder, fsync, rename, fsync the folder. An OSError
    (disk full, permission) leaves the previous file as it was."""
    write_text_atomic(path, record.model_dump_json(indent=1))


def write_text_atomic(path: str | Path, data: str) -> None:
    """Write text ``data`` to ``path`` as :func:`write_atomic` does (the HTML report
    too): ``path`` holds either the old or the new complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); results are shared like any file the
        # user writes, so apply the umask as open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new file in it) to storage."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # not every filesystem lets a folder be fsynced
        pass
