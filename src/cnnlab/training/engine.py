"""The one training engine every kind of run goes through: the epoch loop, the snapshot, status recording and the
failure path.

A run is a `RunState` (its directory, config, model, optimizer, data-order generator and history) and an `EpochSteps`
(how one epoch trains, how validation and the test pass evaluate). `cnnlab-train` gives the standard steps; the
notebook replay gives the notebook's (its data order from the one random stream, training-mode evaluation), and
nothing else differs. With `eval_every` the engine also validates during the epoch (`InEpochEvaluation`), which
changes no weight: time to a target accuracy then has step resolution. `execute` is called with the run directory's
lock held (`locked_run_dir`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from cnnlab.data import Split
from cnnlab.errors import ConfigError
from cnnlab.runs.checkpoint import rng_state, save_checkpoint
from cnnlab.runs.layout import CHECKPOINT, LAST
from cnnlab.runs.lock import run_lock
from cnnlab.runs.record import make_run_dir, now, pass_seconds, remove_stale_temp_files, write_config, write_metrics
from cnnlab.runs.status import RunStatus
from cnnlab.training.artifacts import draws_figures, history_summary, write_curves, write_history, write_test_results
from cnnlab.training.loggers import Loggers, open_logger
from cnnlab.training.loop import StepHook

log = logging.getLogger(__name__)

DIVERGENCE_FACTOR = 100


class Scores(Protocol):
    loss: float
    accuracy: float


@dataclass(frozen=True)
class TestOutcome:
    """The test pass: the split and predictions behind the classification report, the `test` entry of metrics.json
    (accuracy and loss at least) and any further entries the protocol records."""

    split: Split
    predictions: np.ndarray
    test: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class EpochSteps(Protocol):
    """What differs between kinds of run: one training pass, the validation pass and the final test pass."""

    train_images: int  # images per training pass, for images/s
    steps_per_epoch: int  # optimizer steps per training pass
    batch_size: int  # training images per step (the last step of a pass may have fewer)

    def train(self, epoch: int, on_step: StepHook | None = None) -> float:
        """Train for one epoch, calling `on_step` after each step when given; the mean training loss."""

    def validate(self) -> Scores:
        """Validation loss and accuracy (percent) after an epoch."""

    def synchronize(self) -> None:
        """Wait for the training steps queued on the device (a no-op on the CPU), so a clock read next times them."""

    def test(self, history: Sequence[Mapping[str, Any]]) -> TestOutcome:
        """The test pass after the last epoch; runs after the final weights are saved."""


@dataclass
class RunState:
    """One run directory's state while its single writer trains it."""

    run_dir: Path
    config: dict[str, Any]  # the resolved config, stored in every checkpoint
    model: nn.Module
    optimizer: torch.optim.Optimizer
    data_order: torch.Generator  # the generator the training data's order is drawn from
    description: dict[str, Any]  # metrics.json's fixed part (`runs.record.run_description`)
    label: str  # names the run in log lines
    title: str  # names the run in figures
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after the last epoch (or to analyse the run): weights, optimizer, RNG."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": len(self.history),
            "history": self.history,
            "train_time_s": self.train_time,
            "config": self.config,
            "rng": rng_state(self.data_order),
        }

    def record(self, status: RunStatus, **extra: Any) -> dict[str, Any]:
        return write_metrics(self.run_dir, status, self.description, self.history, self.train_time, **extra)

    def end(self, status: RunStatus, **extra: Any) -> RunResult:
        """Record the run's outcome in metrics.json and return it."""
        return RunResult(self.run_dir, status, self.record(status, **extra))


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: RunStatus  # finished | diverged
    metrics: dict[str, Any]
    reused: bool = False


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[Path]:
    """Create the run directory and hold its lock; temp files a killed writer left are removed first."""
    make_run_dir(run_dir)
    with run_lock(run_dir):
        remove_stale_temp_files(run_dir)
        yield run_dir


def divergence(train_loss: float, val_loss: float, num_classes: int) -> str | None:
    """Why an epoch's losses mean the run has diverged, or None.

    Non-finite losses, and also losses 100 times those of guessing uniformly (ln C): weights that large do not come
    back (Adam with lr=10 reaches ~1e10 without overflowing), and no healthy run comes near the bound.
    """
    bound = DIVERGENCE_FACTOR * math.log(num_classes)
    for name, value in (("train loss", train_loss), ("validation loss", val_loss)):
        if not math.isfinite(value):
            return f"{name} is {value}"
        if value > bound:
            return f"{name} {value:.4g} exceeds {bound:.0f} ({DIVERGENCE_FACTOR}x the loss of uniform guessing)"
    return None


def eval_interval(eval_every: Any, steps_per_epoch: int) -> int | None:
    """`trainer.eval_every` in optimizer steps: an integer is steps, a float in (0, 1] a fraction of an epoch (rounded
    up, so 0.25 gives three evaluations during the epoch and the usual one at its end); None evaluates only then."""
    if eval_every is None:
        return None
    allowed = (
        f"allowed: null, a number of steps from 1 to {steps_per_epoch} (one epoch), or a fraction of an epoch in (0, 1]"
    )
    if isinstance(eval_every, bool) or not isinstance(eval_every, (int, float)):
        raise ConfigError(f"trainer.eval_every={eval_every!r} is not a number; {allowed}")
    if isinstance(eval_every, float):
        if not 0 < eval_every <= 1:
            raise ConfigError(f"trainer.eval_every={eval_every!r} is not a fraction of an epoch in (0, 1]; {allowed}")
        return math.ceil(eval_every * steps_per_epoch)
    if not 1 <= eval_every <= steps_per_epoch:
        raise ConfigError(f"trainer.eval_every={eval_every!r} steps is outside one epoch; {allowed}")
    return eval_every


@dataclass
class InEpochEvaluation:
    """Validation every `every` steps during one epoch, as a `StepHook`: each point records the optimizer step, the
    images seen and the training seconds so far (since the run started, evaluation time excluded) beside validation
    loss and accuracy. Evaluation changes no weight, batch-norm statistic or random stream, so a run trains the same
    weights with or without it, and a resumed run records the same points."""

    steps: EpochSteps
    every: int
    epoch: int
    started: float  # perf_counter when the epoch's training began
    before_s: float  # training seconds of the earlier epochs
    points: list[dict[str, Any]] = field(default_factory=list)
    paused_s: float = 0.0  # evaluation time so far this epoch

    def __call__(self, step: int) -> None:
        if step % self.every or step >= self.steps.steps_per_epoch:
            return  # the epoch's end has its own validation
        self.steps.synchronize()  # on a GPU the steps before this one may still be queued: they are training time
        pause = time.perf_counter()
        trained_s = pause - self.started - self.paused_s
        val = self.steps.validate()
        self.paused_s += time.perf_counter() - pause
        done = (self.epoch - 1) * self.steps.steps_per_epoch + step
        images = (self.epoch - 1) * self.steps.train_images + min(step * self.steps.batch_size, self.steps.train_images)
        self.points.append(
            {
                "step": done,
                "images_seen": images,
                "train_seconds": round(self.before_s + trained_s, 3),
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
            }
        )


EpochHook = Callable[[Mapping[str, Any]], bool]


def execute(
    run: RunState,
    steps: EpochSteps,
    *,
    epochs: int,
    classes: Sequence[str],
    logger_cfg: Mapping[str, Any] | None = None,
    on_epoch: EpochHook | None = None,
    test: bool = True,
    eval_every: int | None = None,
) -> RunResult:
    """Train `run` from its last recorded epoch to `epochs`, saving each epoch's snapshot to last.pt, test it and
    record the outcome.

    `eval_every` (steps, `eval_interval`) also validates during each epoch. `on_epoch` sees each epoch's history
    entry once its snapshot is saved and may stop the run there (`pruned`, e.g. by a tuner). `test=False` ends a
    complete run as `trained` without reading the test set; last.pt stays, so training the same run later only adds
    the test pass. From the first write on, any exception (Ctrl-C included) is recorded as `failed` before it
    propagates; a failure to record it (a full disk) never hides the original error.
    """
    logger = Loggers()
    try:
        write_config(run.run_dir, run.config)
        run.record(RunStatus.RUNNING)
        logger = open_logger(logger_cfg, run.run_dir, first_epoch=len(run.history) + 1, config=run.config)
        for epoch in range(len(run.history) + 1, epochs + 1):
            entry = train_one_epoch(run, steps, epoch=epoch, epochs=epochs, eval_every=eval_every)
            write_history(run.run_dir, run.history)
            logger.log_epoch(entry)
            if reason := divergence(entry["train_loss"], entry["val_loss"], len(classes)):
                log.error("%s diverged at epoch %d: %s; try a smaller optimizer.lr", run.label, epoch, reason)
                return run.end(RunStatus.DIVERGED, finished_at=now(), diverged_at_epoch=epoch, diverged_because=reason)
            save_checkpoint(run.run_dir / LAST, run.snapshot())
            if on_epoch is not None and on_epoch(entry):
                log.info("%s stopped after epoch %d (pruned)", run.label, epoch)
                return run.end(RunStatus.PRUNED, **history_summary(run.history))
            run.record(RunStatus.RUNNING)
        if not test:
            return run.end(RunStatus.TRAINED, **history_summary(run.history))
        return finish(run, steps, classes=classes, logger=logger)
    except BaseException as err:
        with contextlib.suppress(OSError):
            run.record(RunStatus.FAILED, error=f"{type(err).__name__}: {err}")
        raise
    finally:
        logger.close()


def train_one_epoch(
    run: RunState, steps: EpochSteps, *, epoch: int, epochs: int, eval_every: int | None
) -> dict[str, Any]:
    """Train and validate once, timed; the epoch's history entry, appended to the run's history and logged.

    The entry counts optimizer steps and images seen since the run began and the training seconds of this pass
    (`train_s`, evaluation excluded); with `eval_every`, `evals` holds the validations during the epoch."""
    start = time.perf_counter()
    during = None
    if eval_every is not None:
        before_s = sum(pass_seconds(h) for h in run.history)
        during = InEpochEvaluation(steps, eval_every, epoch, start, before_s=before_s)
    train_loss = steps.train(epoch, during)
    train_seconds = time.perf_counter() - start - (during.paused_s if during else 0.0)
    val = steps.validate()
    epoch_seconds = time.perf_counter() - start
    run.train_time += epoch_seconds
    entry = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val.loss,
        "val_accuracy": val.accuracy,
        "epoch_time_s": round(epoch_seconds, 3),
        "train_s": round(train_seconds, 3),
        "images_per_s": round(steps.train_images / train_seconds, 1),
        "step": epoch * steps.steps_per_epoch,
        "images_seen": epoch * steps.train_images,
    }
    if during:
        entry["evals"] = during.points
    run.history.append(entry)
    log.info(
        "%s epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.2f%%  %.1fs  %.0f img/s",
        *(run.label, epoch, epochs, train_loss, val.loss, val.accuracy, epoch_seconds, entry["images_per_s"]),
    )
    return entry


def finish(run: RunState, steps: EpochSteps, *, classes: Sequence[str], logger: Loggers) -> RunResult:
    """Save the final weights, run the test pass, write the run's reports and figures, and record it finished."""
    save_checkpoint(run.run_dir / CHECKPOINT, run.snapshot())
    outcome = steps.test(run.history)
    draw = draws_figures(run.config)
    report = write_test_results(
        run.run_dir, outcome.split, outcome.predictions, classes, run.title, run.config["seed"], figures=draw
    )
    if draw:
        write_curves(run.run_dir, run.history, run.title)
    figures = [run.run_dir / "curves.png", run.run_dir / "confusion_matrix.png"] if draw else []
    logger.log_test(len(run.history), outcome.test["accuracy"], outcome.test["loss"], figures)
    result = run.end(
        RunStatus.FINISHED,
        finished_at=now(),
        test=outcome.test,
        **history_summary(run.history),
        classification_report=report,
        **outcome.extra,
    )
    (run.run_dir / LAST).unlink(missing_ok=True)
    log.info("%s test accuracy %.2f%% in %.1fs -> %s", run.label, outcome.test["accuracy"], run.train_time, run.run_dir)
    return result
