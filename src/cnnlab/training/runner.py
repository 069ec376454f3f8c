"""Train one configuration into its run directory: reuse it if finished, resume it if not, else start it.

`train(cfg)` is what `cnnlab-train` calls; it takes a composed config and never reads Hydra's globals, so a test or a
notebook can call it directly. The epoch loop, snapshots and status recording are the shared engine's
(`training.engine`); this module adds what a standard run does: cnnlab's tensor data pipeline with its own seeded
data order, eval-mode evaluation, and resuming from last.pt.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from cnnlab.checks import boolean, count_of, one_of, positive_int, seed
from cnnlab.config import to_plain
from cnnlab.data import Batches, Split, Splits, get_spec, load_splits
from cnnlab.device import fast_bf16, resolve_device
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import MODELS, build_model
from cnnlab.runs.checkpoint import load_checkpoint, load_weights, restore_rng_state
from cnnlab.runs.layout import LAST, identity, run_dir_for
from cnnlab.runs.record import clear_results, run_description
from cnnlab.runs.status import RunStatus, read_metrics, status_of
from cnnlab.training.artifacts import draws_figures
from cnnlab.training.engine import (
    EpochHook,
    RunResult,
    RunState,
    TestOutcome,
    eval_interval,
    execute,
    locked_run_dir,
)
from cnnlab.training.loggers import check_logger, warm_up
from cnnlab.training.loop import Evaluation, StepHook, evaluate, train_epoch
from cnnlab.training.optimizers import build_optimizer, check_optimizer
from cnnlab.training.step import TrainStep, make_step, set_capturable

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")


def check_train_settings(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written: every number in range, every name that selects code known."""
    seed("seed", cfg.seed)
    boolean("overwrite", cfg.overwrite)
    check_data(cfg.data)
    one_of("model.name", cfg.model.name, MODELS)
    boolean("model.batch_norm", cfg.model.batch_norm)
    check_optimizer(cfg.optimizer)
    positive_int("trainer.epochs", cfg.trainer.epochs)
    one_of("trainer.precision", cfg.trainer.precision, PRECISIONS)
    boolean("trainer.channels_last", cfg.trainer.channels_last)
    boolean("trainer.cuda_graph", graphed(cfg))
    boolean("trainer.progress", cfg.trainer.progress)
    boolean("trainer.figures", draws_figures(cfg))
    if cfg.trainer.num_threads is not None:
        positive_int("trainer.num_threads", cfg.trainer.num_threads)
    eval_interval(cfg.trainer.get("eval_every"), steps_per_epoch(cfg.data))
    resolve_device(cfg.trainer.device)
    check_logger(cfg.get("logger"))


def graphed(cfg: DictConfig) -> bool:
    """`trainer.cuda_graph`; a config recorded before the setting existed (cnnlab-verify re-trains those) was trained
    op by op."""
    return cfg.trainer.get("cuda_graph", False)


def check_data(data: DictConfig) -> None:
    """The data settings against the dataset's known sizes, in the same words as `load_splits`, which checks them
    again against the files' real sizes."""
    spec = get_spec(data.name)
    val_size = data.val_size
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 < val_size < spec.train_size:
        raise ConfigError(f"data.val_size={val_size!r} must be between 1 and {spec.train_size - 1}")
    positive_int("data.batch_size", data.batch_size)
    positive_int("data.eval_batch_size", data.eval_batch_size)
    if data.subset is not None:
        count_of("data.subset", data.subset, "the training split", spec.train_size - val_size)
    if (test_subset := data.get("test_subset")) is not None:  # absent from configs recorded before it existed
        count_of("data.test_subset", test_subset, "the test set", spec.test_size)
    if data.split_seed is not None:
        seed("data.split_seed", data.split_seed)
    boolean("data.normalize", data.normalize)
    boolean("data.download", data.download)


def steps_per_epoch(data: DictConfig) -> int:
    """Optimizer steps in one pass over the training split the data settings select (checked by `check_data`)."""
    spec = get_spec(data.name)
    images = spec.train_size - data.val_size
    if data.subset is not None:
        images = min(images, data.subset)
    return math.ceil(images / data.batch_size)


def seed_everything(seed: int) -> None:
    """Seed every global stream so a run never depends on what ran before it in the same process."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class StandardSteps:
    """cnnlab's epoch: shuffled tensor batches from the run's own generator, eval-mode validation and test."""

    model: torch.nn.Module
    batches: Batches
    val: Split
    test_split: Split  # on the device
    test_cpu: Split  # the same images on the CPU, for the prediction grid
    step: TrainStep  # one optimizer step on one batch (graphed on cuda by default)
    precision: str
    memory_format: torch.memory_format
    eval_batch_size: int
    progress: bool

    @property
    def train_images(self) -> int:
        return len(self.batches.split)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size

    def train(self, epoch: int, on_step: StepHook | None = None) -> float:
        loss = train_epoch(
            self.model,
            self.batches,
            self.step,
            progress=self.progress,
            description=f"epoch {epoch}",
            on_step=on_step,
        )
        return loss.item()

    def evaluate(self, split: Split) -> Evaluation:
        return evaluate(self.model, split, self.eval_batch_size, self.precision, self.memory_format)

    def validate(self) -> Evaluation:
        return self.evaluate(self.val)

    def synchronize(self) -> None:
        if self.val.x.is_cuda:
            torch.cuda.synchronize(self.val.x.device)

    def test(self, history: Sequence[Mapping[str, Any]]) -> TestOutcome:
        result = self.evaluate(self.test_split)
        scores = {"accuracy": result.accuracy, "loss": result.loss}
        return TestOutcome(self.test_cpu, result.predictions.numpy(), scores)


def _reuse(run_dir: Path, overwrite: bool) -> RunResult | None:
    """The recorded outcome when the run already finished or diverged (and overwrite is off), else None."""
    previous = read_metrics(run_dir)
    status = status_of(previous)
    if not previous or not status.is_final or overwrite:
        return None
    outcome = f"test accuracy {previous['test']['accuracy']:.2f}%" if "test" in previous else "diverged"
    log.info("%s is already %s (%s); overwrite=true retrains it", run_dir, status, outcome)
    return RunResult(run_dir, status, previous, reused=True)


def train(cfg: DictConfig, *, on_epoch: EpochHook | None = None, test: bool = True) -> RunResult:
    """Train `cfg` into its run directory, holding the directory's lock so no second process writes there at once.

    `on_epoch` and `test` are the engine's (`training.engine.execute`): a tuner's pruning hook, and whether the run
    ends with the test pass or as `trained`."""
    check_train_settings(cfg)
    plain = to_plain(cfg)
    run_dir = run_dir_for(plain)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} exists and is a file")
    if reused := _reuse(run_dir, cfg.overwrite):
        return reused
    warm_up(cfg.get("logger"))
    splits = load_splits(
        get_spec(cfg.data.name),
        cfg.data.root,
        split_seed=cfg.data.split_seed,
        val_size=cfg.data.val_size,
        subset=cfg.data.subset,
        test_subset=cfg.data.get("test_subset"),
        normalize=cfg.data.normalize,
        download=cfg.data.download,
    )
    with locked_run_dir(run_dir):
        # another process may have finished this run while we loaded the data
        if reused := _reuse(run_dir, cfg.overwrite):
            return reused
        if cfg.overwrite:
            clear_results(run_dir)
        run, steps = prepare(cfg, plain, run_dir, splits)
        return execute(
            run,
            steps,
            epochs=cfg.trainer.epochs,
            classes=splits.classes,
            logger_cfg=cfg.get("logger"),
            on_epoch=on_epoch,
            test=test,
            eval_every=eval_interval(cfg.trainer.get("eval_every"), steps.steps_per_epoch),
        )


def prepare(cfg: DictConfig, plain: dict[str, Any], run_dir: Path, splits: Splits) -> tuple[RunState, StandardSteps]:
    """Seed, build the model and optimizer on the device, and resume from last.pt when there is one."""
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.precision == "bf16" and not fast_bf16(device):
        log.warning(
            "trainer.precision=bf16: this %s has no fast bf16 kernels, so bf16 runs slower than fp32", device.type
        )
    seed_everything(cfg.seed)
    train_split, val_split, test_split = (s.to(device) for s in (splits.train, splits.val, splits.test))
    memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    model = build_model(cfg.model).to(device).to(memory_format=memory_format)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    generator = torch.Generator().manual_seed(cfg.seed)
    label = f"{cfg.optimizer.name}{'+BN' if cfg.model.batch_norm else ''} seed {cfg.seed}"
    description = run_description(plain, model, splits.spec.image_shape, device)
    run = RunState(run_dir, plain, model, optimizer, generator, description, label=label, title=label)
    if not cfg.overwrite:
        resume(run, device)
    step = make_step(
        model,
        optimizer,
        batch_size=cfg.data.batch_size,
        precision=cfg.trainer.precision,
        memory_format=memory_format,
        cuda_graph=graphed(cfg),
    )
    steps = StandardSteps(
        model=model,
        batches=Batches(train_split, cfg.data.batch_size, shuffle=True, generator=generator),
        step=step,
        val=val_split,
        test_split=test_split,
        test_cpu=splits.test,
        precision=cfg.trainer.precision,
        memory_format=memory_format,
        eval_batch_size=cfg.data.eval_batch_size,
        progress=cfg.trainer.progress,
    )
    return run, steps


def resume(run: RunState, device: torch.device) -> None:
    """Continue from last.pt when an earlier attempt left one: weights, optimizer, every random stream, history."""
    last_path = run.run_dir / LAST
    if not last_path.exists():
        return
    state = load_checkpoint(last_path, map_location=device)
    if identity(state["config"]) != identity(run.config) or state["config"]["seed"] != run.config["seed"]:
        raise CheckpointError(f"{last_path} was written by a different configuration; delete it or pass overwrite=true")
    load_weights(run.model, state["model"], last_path)
    load_weights(run.optimizer, state["optimizer"], last_path)
    set_capturable(run.optimizer, False)  # whatever mode last.pt was saved in; a CUDA graph switches it on again
    restore_rng_state(state["rng"], run.data_order)
    run.history, run.train_time = list(state["history"]), float(state["train_time_s"])
    log.info("resuming %s after epoch %d", run.run_dir, state["epoch"])


__all__ = ["RunResult", "RunStatus", "check_train_settings", "train"]
