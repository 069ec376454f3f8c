"""One writer per run directory: an advisory `flock` that the kernel drops when its process dies, even by `kill -9`.

Two processes training the same configuration and seed (two terminals, or a sweep launched twice) would otherwise
interleave checkpoints and metrics. The second one stops with a clear error instead of waiting, so a sweep moves on.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import RunInUseError

LOCK = ".lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `<run_dir>/.lock` for the block; the file is removed on release so a finished run directory stays clean."""
    path = run_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(path)
            raise RunInUseError(
                f"run directory {run_dir} is in use by another cnnlab process{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish, or stop it"
            ) from None
        # the previous holder may have removed the file between our open and flock: then lock the new one
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
