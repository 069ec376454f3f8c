"""`logger=mlflow` from the training process: the tracking itself runs in a child process, at the lowest CPU priority
once its first run has started.

Importing MLflow and opening its SQLite store is a few seconds of pure Python. In the training process that would
either delay the first epoch or, in a thread, hold the GIL between every torch call of the epochs; in a child process
at the lowest priority it uses only the CPU time that training leaves idle (the single-threaded parts of each step,
evaluation, the test figures), and the run waits for it only where it must. One child serves every run of a process
in turn (a sweep's jobs under the basic launcher, the trials of a study with `tune.n_jobs=1`), so they pay MLflow's
import once.

The two ends talk over the child's stdin (one JSON object per line: start, epoch, test, close, each stamped with the
time it happened here) and stdout (the child's log records, logged again here under their own logger's name so that
they reach this run's log, and word that it has started or closed a run). The first epoch is reported only once the
MLflow run exists and the run directory records its id, so a run killed from its first epoch on is continued when it
resumes; `close` returns once the MLflow run has ended. The child starts at normal priority and takes the lowest
once its first run has started, since until then the run may have to wait for it; a new SQLite store is made aside
meanwhile, so that its first run need not wait for MLflow's schema migrations.

The child runs in a session of its own, so Ctrl-C at a terminal reaches only the run (which then closes the MLflow
run as failed). When the training process dies (killed), the child stops before its next message, and a run it is
starting when that happens is not created once the store is open: the MLflow run stays RUNNING (or is never made) and
a resumed run continues from what the store holds, so nothing is logged twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.tracking.mlflow import PARENT_ENV, RunTracker, quiet_mlflow, sqlite_file

log = logging.getLogger("cnnlab.tracking.mlflow")


class TrackingProcess:
    """The child process: started by a process's first tracked run, reused by the runs after it. It ends when this
    process ends (its stdin closes)."""

    def __init__(self, tracking_uri: str) -> None:
        argv = [sys.executable, "-m", __name__, str(os.getpid()), tracking_uri]
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, errors="replace", start_new_session=True
        )
        self.owner = os.getpid()  # a forked process must not write into its parent's pipe
        self.acks: queue.Queue[tuple[str, str] | None] = queue.Queue()  # (what, run directory); None: the child ended
        threading.Thread(target=self._relay, daemon=True).start()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.popen.poll() is None and self.popen.stdin is not None

    def send(self, kind: str, payload: Any) -> bool:
        """One line to the child; False (and one line in the log) when it is gone."""
        if self.popen.stdin is None:
            return False
        try:
            self.popen.stdin.write(json.dumps({kind: payload, "at_ms": int(time.time() * 1000)}, default=str) + "\n")
            self.popen.stdin.flush()
            return True
        except OSError:  # the child died: a bug there printed its traceback to stderr
            log.warning("MLflow tracking stopped (its process ended with %s); the run goes on", self.popen.poll())
            self.popen.stdin = None
            return False

    def wait_for(self, what: str, run_dir: str) -> None:
        """Until the child reports `what` for the run in `run_dir` (or has ended)."""
        while (done := self.acks.get()) not in ((what, run_dir), None):
            pass
        if done is None:
            self.acks.put(None)  # it stays ended for whoever waits next

    def _relay(self) -> None:
        """The child's log records, logged here under their logger's name (its other output as it is), and its
        acknowledgements."""
        assert self.popen.stdout is not None
        try:
            for line in self.popen.stdout:
                try:
                    message = json.loads(line)
                    if "ack" in message:
                        self.acks.put((str(message["ack"]), str(message["run_dir"])))
                    else:
                        logging.getLogger(str(message["name"])).log(int(message["level"]), str(message["message"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.info(line.rstrip())
        finally:
            self.acks.put(None)


_process: TrackingProcess | None = None


def tracking_process(tracking_uri: str) -> TrackingProcess:
    """This process's tracking process, started on first use (or again, when the last one died). Calling this before
    a run needs it (`training.loggers.warm_up`) lets the child import MLflow while this process imports torch."""
    global _process
    if _process is None or not _process.alive():
        _process = TrackingProcess(tracking_uri)
    return _process


class MlflowLogger:
    """What the training engine calls: each call becomes one line to the tracking process; `close` waits for it."""

    def __init__(self, settings: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any]):
        self.process, self.run_dir = tracking_process(str(settings["tracking_uri"])), str(run_dir)
        # the parent run in force now (a sweep's is set after this process's tracking process started)
        parent = os.environ.get(PARENT_ENV)
        start = {"settings": dict(settings), "run_dir": self.run_dir, "config": config, "parent": parent}
        self.awaiting_start = self.process.send("start", start)

    def _started(self) -> None:
        if self.awaiting_start:
            self.process.wait_for("started", self.run_dir)
            self.awaiting_start = False

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        self._started()  # at once after the first epoch: the tracking process has long started by then
        self.process.send("epoch", dict(record))

    def log_test(self, epoch: int, accuracy: float, loss: float, figures: Sequence[Path]) -> None:
        self.process.send("test", {"epoch": epoch, "accuracy": accuracy, "loss": loss})

    def close(self) -> None:
        """End the MLflow run (its status read from metrics.json) and wait until the tracking process has."""
        self._started()
        if self.process.send("close", None):
            self.process.wait_for("closed", self.run_dir)


class _ToParent(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # the message, with its traceback if it has one
        with contextlib.suppress(OSError):  # the training process is gone
            print(json.dumps({"name": record.name, "level": record.levelno, "message": text}), flush=True)


def main() -> None:
    """The tracking process: a `RunTracker` driven by the lines on stdin. Before its first run starts it imports what
    that run's store needs and, for a new SQLite store, makes its tables elsewhere (`_prepare_store`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run closes this process's MLflow run as failed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # a job's end: remove what it prepared
    parent_pid, uri = int(sys.argv[1]), sys.argv[2]
    root = logging.getLogger()
    root.addHandler(_ToParent())
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    import mlflow  # noqa: F401 - seconds of imports, done while nothing waits for them

    def parent_alive() -> bool:
        return os.getppid() == parent_pid

    tracker: RunTracker | None = None
    prepared = _prepare_store(uri)
    try:
        for line in sys.stdin:
            if not parent_alive():  # the run was killed: its resume continues from what the store holds
                return
            message = json.loads(line)
            at_ms = message.pop("at_ms")
            ((kind, payload),) = message.items()
            if kind == "start" and prepared is not None:
                _place_store(prepared, str(payload["settings"]["tracking_uri"]))
                prepared = None
            tracker = _handle(tracker, kind, payload, at_ms, wanted=parent_alive)
    finally:
        if prepared is not None:
            shutil.rmtree(prepared.parent, ignore_errors=True)


def _prepare_store(uri: str) -> Path | None:
    """Where `uri` is a SQLite file that does not exist yet: a new store made in a folder of temporary files (MLflow's
    schema migrations take seconds, done here while the run is still starting), for `_place_store` to publish once
    the run starts. Nothing is written at `uri` before then, since the run may yet stop on a bad input. None where
    nothing was prepared: MLflow then opens the store where the run starts, and reports what fails there."""
    database = sqlite_file(uri)
    if database is None:
        return None
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the SQLite store's modules, a second more

    try:
        if database.exists():
            return None
        prepared = Path(tempfile.mkdtemp(prefix="cnnlab-mlflow-")) / "mlflow.db"
    except OSError:  # a path this process may not look at, or no temporary folder
        return None
    from mlflow import MlflowClient

    try:
        # quiet: MLflow announces the tables it creates, and a bad input's one line must be all the terminal shows
        with quiet_mlflow():
            MlflowClient(f"sqlite:///{prepared}").search_experiments()  # opening a store creates its tables
        return prepared
    except Exception:  # noqa: BLE001 - any failure here is met again, and reported, where the run opens its store
        shutil.rmtree(prepared.parent, ignore_errors=True)
        return None


def _place_store(prepared: Path, uri: str) -> None:
    """Publish the prepared store as `uri`'s file, unless a store is there by now (another job of a sweep made it):
    copied into a new file beside it, then hard-linked into place, which fails rather than replace a file. Where that
    cannot be done, MLflow creates the store itself. The prepared copy is gone afterwards."""
    database = sqlite_file(uri)
    try:
        if database is not None and not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True)
            handle, staged = tempfile.mkstemp(dir=database.parent, prefix=f".{database.name}.")
            os.close(handle)
            try:
                shutil.copyfile(prepared, staged)
                os.link(staged, database)
            except FileExistsError:
                pass
            finally:
                os.unlink(staged)
    except OSError:
        pass
    finally:
        shutil.rmtree(prepared.parent, ignore_errors=True)


def _handle(
    tracker: RunTracker | None, kind: str, payload: Any, at_ms: int, *, wanted: Callable[[], bool]
) -> RunTracker | None:
    """One message from the training process; the tracker of the run in progress after it. `wanted`: whether the
    training process is still there."""
    if kind == "start":
        if tracker is not None:  # the last run never closed (its process went on after an error): end it now
            tracker.close()
        settings, run_dir, config = payload["settings"], Path(payload["run_dir"]), payload["config"]
        tracker = RunTracker(settings, run_dir, config, payload["parent"], wanted)
        _ack("started", tracker.run_dir)
        _lowest_priority()
    elif tracker is not None and kind == "epoch":
        tracker.log_epoch(payload, at_ms)
    elif tracker is not None and kind == "test":
        tracker.log_test(**payload, at_ms=at_ms)
    elif tracker is not None and kind == "close":
        tracker.close()
        _ack("closed", tracker.run_dir)
        tracker = None
    return tracker


def _lowest_priority() -> None:
    """From the first run's start on: until then the run waits for this process (its first epoch is reported once the
    MLflow run exists), so opening the store competes for the CPU as an equal instead of only when the run stops.
    Set for the process group (this process's own session), which covers every thread, MLflow's too."""
    if hasattr(os, "setpriority") and os.getpriority(os.PRIO_PROCESS, 0) < 19:
        os.setpriority(os.PRIO_PGRP, 0, 19)


def _ack(what: str, run_dir: Path) -> None:
    print(json.dumps({"ack": what, "run_dir": str(run_dir)}), flush=True)


if __name__ == "__main__":
    main()
