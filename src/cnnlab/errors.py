"""User-facing errors: one clear line on stderr and a non-zero exit instead of a traceback."""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from cnnlab.runtime import keep_freed_memory

T = TypeVar("T")

EXIT_USER_ERROR = 2


def first_line(err: BaseException | str, default: str = "") -> str:
    """The first line of an error's message (libraries append context, hints and tracebacks below it); for an
    exception without a message, its type's name, unless `default` says what to show instead."""
    lines = str(err).strip().splitlines()
    if lines:
        return lines[0]
    return default or (type(err).__name__ if isinstance(err, BaseException) else "")


class CnnlabError(Exception):
    """A problem the user can fix: a bad setting, a missing or corrupt file. The message names it."""


class ConfigError(CnnlabError):
    """A setting outside its allowed range."""


class DataError(CnnlabError):
    """A data file that is missing, corrupt or unreadable."""


class CheckpointError(CnnlabError):
    """A checkpoint or run directory that cannot be used."""


class RunInUseError(CheckpointError):
    """A run directory another process is training now (its lock is held)."""


def fail(prog: str, message: str) -> NoReturn:
    """Print `prog: error: message` as one line on stderr and exit with status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR)


def show_traceback() -> bool:
    """Whether the user asked for the traceback behind a one-line error (HYDRA_FULL_ERROR=1 or CNNLAB_TRACEBACK=1)."""
    return any(os.environ.get(name, "") not in ("", "0") for name in ("HYDRA_FULL_ERROR", "CNNLAB_TRACEBACK"))


def run_cli(prog: str, fn: Callable[[], T]) -> T:
    """Run an entry point's body, turning a CnnlabError, or an OSError such as a full disk, into one line and exit 2.

    Every command comes through here, so this is also where the process gets its CPU memory settings.
    """
    keep_freed_memory()
    # a log file on a full disk must not print a traceback per log line; the error itself is still reported
    logging.raiseExceptions = show_traceback()
    try:
        return fn()
    except (CnnlabError, OSError) as err:
        if show_traceback():
            traceback.print_exc()
        fail(prog, describe_os_error(err) if isinstance(err, OSError) else str(err))


def describe_os_error(err: OSError) -> str:
    """One line for an OSError; a full disk names the folder (not a temp file's name) and says what to do."""
    if err.errno == errno.ENOSPC:
        where = Path(err.filename) if err.filename else None
        folder = where if where is None or where.is_dir() else where.parent
        return (
            f"the disk is full (No space left on device) writing to {folder or 'the output folder'}; free some space "
            "and run the command again: a run resumes from its last finished epoch"
        )
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"
