"""Each data or checkpoint case's scratch folder: made in ``settings.checkpoint_dir``
when the case starts, removed when it ends -- also when it fails, and when the runner
ends the worker with SIGTERM (a timeout, or a run stopped by a signal): while a
scratch folder exists the worker turns SIGTERM into an exception, so the ``finally``
that removes it runs. A worker whose runner died (its lifeline closed) removes the
open folders before it exits (:func:`remove_open`). Only SIGKILL can leave one
behind; its name starts with :data:`hwbench.io.SCRATCH_PREFIX`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from . import SCRATCH_PREFIX

_open: list[Path] = []
_lock = threading.Lock()


class Terminated(BaseException):
    """SIGTERM arrived while a scratch folder was open (a BaseException, as
    KeyboardInterrupt, so no ``except Exception`` on the way swallows it)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated("worker ended by SIGTERM (timeout or stopped run); its scratch folder was removed")


@contextlib.contextmanager
def scratch(root: str | None) -> Iterator[Path]:
    """A new folder in ``root`` (None: the system's temporary folder), removed on the
    way out, SIGTERM included (module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
    with _lock:
        _open.append(folder)
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        yield folder
    finally:
        try:
            shutil.rmtree(folder, ignore_errors=True)
            with _lock:
                if folder in _open:
                    _open.remove(folder)
        finally:
            if main:
                signal.signal(signal.SIGTERM, old)


def remove_open() -> None:
    """Remove every scratch folder still open in this process (best effort: called by a
    worker about to exit because its runner is gone)."""
    with _lock:
        for folder in _open:
            shutil.rmtree(folder, ignore_errors=True)
        _open.clear()
