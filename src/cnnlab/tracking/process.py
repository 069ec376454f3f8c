"""`logger=mlflow` from the training process: the tracking itself runs in a child process at the lowest CPU priority.

Importing MLflow and opening its SQLite store is a few seconds of pure Python. In the training process that would
either delay the first epoch or, in a thread, hold the GIL between every torch call of the epochs; in a child process
at the lowest priority it uses only the CPU time that training leaves idle (the single-threaded parts of each step,
evaluation, the test figures), and the run waits for it only where it must. One child serves every run of a process
in turn (a sweep's jobs in one process, a study's trials), so they pay MLflow's import once.

The two ends talk over the child's stdin (one JSON object per line: start, epoch, test, close) and stdout (the child's
log records, logged again here so that its warnings reach this run's log, and word that it has started or closed a
run). The first epoch is reported only once the MLflow run exists and the run directory records its id, so a run
killed from its first epoch on is continued when it resumes; `close` returns once the MLflow run has ended.

When the training process dies (killed), the child stops at once: the MLflow run stays RUNNING and a resumed run
continues it from what the store holds, so nothing is logged twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.tracking.mlflow import PARENT_ENV, RunTracker
from cnnlab.training.loggers import NullLogger

log = logging.getLogger("cnnlab.tracking.mlflow")


class TrackingProcess:
    """The child process: started by a process's first tracked run, reused by the runs after it (a sweep's jobs in
    one process, a study's trials), so they pay MLflow's import once. It ends when this process ends."""

    def __init__(self, tracking_uri: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", __name__, tracking_uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.owner = os.getpid()  # a forked process must not write into its parent's pipe
        self.acks: queue.Queue[str | None] = queue.Queue()  # what the child has done: started, closed; None: it ended
        threading.Thread(target=self._relay, daemon=True).start()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.popen.poll() is None and self.popen.stdin is not None

    def send(self, kind: str, payload: Any) -> bool:
        """One line to the child; False (and one line in the log) when it is gone."""
        if self.popen.stdin is None:
            return False
        try:
            self.popen.stdin.write(json.dumps({kind: payload}) + "\n")
            self.popen.stdin.flush()
            return True
        except OSError:  # the child died: a bug there printed its traceback to stderr
            log.warning("MLflow tracking stopped (its process ended with %s); the run goes on", self.popen.poll())
            self.popen.stdin = None
            return False

    def wait_for(self, ack: str) -> None:
        """Until the child reports `ack` (or has ended)."""
        while (done := self.acks.get()) not in (ack, None):
            pass
        if done is None:
            self.acks.put(None)  # it stays ended for whoever waits next

    def _relay(self) -> None:
        """The child's log records, logged here (its other output, if any, as it is), and its acknowledgements."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            try:
                record = json.loads(line)
                if "ack" in record:
                    self.acks.put(str(record["ack"]))
                else:
                    log.log(int(record["level"]), str(record["message"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                log.info(line.rstrip())
        self.acks.put(None)


_process: TrackingProcess | None = None


def tracking_process(tracking_uri: str) -> TrackingProcess:
    """This process's tracking process, started on first use (or again, when the last one died). Calling this before
    a run needs it (`training.loggers.warm_up`) lets the child import MLflow while this process loads the data."""
    global _process
    if _process is None or not _process.alive():
        _process = TrackingProcess(tracking_uri)
    return _process


class MlflowLogger(NullLogger):
    """What the training engine calls: each call becomes one line to the tracking process; `close` waits for it."""

    def __init__(self, settings: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any]):
        self.process = tracking_process(str(settings["tracking_uri"]))
        # the parent run in force now (a sweep's is set after this process's tracking process started)
        parent = os.environ.get(PARENT_ENV)
        start = {"settings": dict(settings), "run_dir": str(run_dir), "config": config, "parent": parent}
        self.starting = self.process.send("start", start)

    def _started(self) -> None:
        if self.starting:
            self.process.wait_for("started")
            self.starting = False

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        self._started()  # at once after the first epoch: the tracking process has long started by then
        self.process.send("epoch", dict(record))

    def log_test(self, epoch: int, accuracy: float, loss: float, figures: Sequence[Path]) -> None:
        self.process.send("test", {"epoch": epoch, "accuracy": accuracy, "loss": loss})

    def close(self) -> None:
        """End the MLflow run (its status read from metrics.json) and wait until the tracking process has."""
        self._started()
        if self.process.send("close", None):
            self.process.wait_for("closed")


class _ToParent(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(json.dumps({"level": record.levelno, "message": record.getMessage()}), flush=True)


def main() -> None:
    """The tracking process: a `RunTracker` driven by the lines on stdin. It imports what the store of its first
    run needs before that run starts (opening the store would create it, and the run may yet stop on a bad input)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run, which then closes this as failed
    if hasattr(os, "nice"):
        os.nice(19)
    import mlflow  # noqa: F401 - seconds of imports, done while nothing waits for them

    if sys.argv[1:] and sys.argv[1].startswith("sqlite:"):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the SQLite store's modules, a second more

    logging.getLogger("cnnlab").addHandler(_ToParent())
    logging.getLogger("cnnlab").setLevel(logging.INFO)
    parent = os.getppid()
    tracker: RunTracker | None = None
    for line in sys.stdin:
        if os.getppid() != parent:  # the run was killed: its resume continues from what the store holds
            return
        ((kind, payload),) = json.loads(line).items()
        if kind == "start":
            tracker = RunTracker(payload["settings"], Path(payload["run_dir"]), payload["config"], payload["parent"])
            _ack("started")
        elif tracker is not None and kind == "epoch":
            tracker.log_epoch(payload)
        elif tracker is not None and kind == "test":
            tracker.log_test(**payload)
        elif tracker is not None and kind == "close":
            tracker.close()
            tracker = None
            _ack("closed")


def _ack(what: str) -> None:
    print(json.dumps({"ack": what}), flush=True)


if __name__ == "__main__":
    main()
