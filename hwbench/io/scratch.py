"""Each data or checkpoint case's scratch folder: made in ``settings.checkpoint_dir``
when the case starts, removed when it ends -- also when it fails, and when the runner
ends the worker with SIGTERM (a timeout, or a run stopped by a signal): while a
scratch folder exists the worker turns SIGTERM into an exception, so the ``finally``
that removes it runs. A worker whose runner died (its lifeline closed) removes the
open folders before it exits (:func:`remove_open`). A worker that had to be killed
(SIGKILL, when it did not end within the runner's grace after SIGTERM) cannot clean
up: its folders carry its pid in their name (:data:`hwbench.io.SCRATCH_PREFIX` +
``<pid>-``), and the runner removes them after the worker is gone (:func:`remove_left`);
for a sharded checkpoint case the folder is rank 0's, and the runner removes the
folders of every pid of the killed group (agent and ranks).
"""

from __future__ import annotations

import contextlib
import os
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
    # the worker's pid in the name: a runner that had to SIGKILL it removes what is left
    folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=root))
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


def remove_left(root: str | None, pid: int) -> list[Path]:
    """Remove the scratch folders worker ``pid`` made in ``root`` (None: the system's
    temporary folder) and left behind (it was killed); returns them. Called by the
    runner once the worker has exited, so nothing writes into them any more."""
    base = Path(root) if root else Path(tempfile.gettempdir())
    left = sorted(base.glob(f"{SCRATCH_PREFIX}{pid}-*"))
    for folder in left:
        shutil.rmtree(folder, ignore_errors=True)
    return left
