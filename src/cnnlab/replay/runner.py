"""Replay the notebook's runs in one process and write each as a normal run directory marked `protocol: notebook`.

`replay(cfg)` is what `cnnlab-replay` calls. It owns `paths.replay_dir`: one run directory per notebook run (the
usual files, so every analysis can read them) and `replay-e<epochs>.json`, the comparison with the published numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from cnnlab.atomic import write_json
from cnnlab.checks import boolean, positive_int
from cnnlab.config import compose_config, override_value, to_plain
from cnnlab.data import MNIST_SPEC, Split, ensure_files
from cnnlab.data.splits import read_raw, to_float
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError
from cnnlab.models import build_model
from cnnlab.replay import notebook
from cnnlab.replay.published import INTERLUDE_AFTER, NOTEBOOK_RUNS, PublishedRun
from cnnlab.replay.results import compare_run, load_replay, summary_path
from cnnlab.runs.layout import run_dir_for
from cnnlab.runs.record import now, run_description
from cnnlab.training.engine import RunState, TestOutcome, execute, locked_run_dir
from cnnlab.training.loop import Evaluation, StepHook, evaluate
from cnnlab.training.optimizers import build_optimizer, check_optimizer

log = logging.getLogger(__name__)

PROTOCOL = "notebook"


def check_replay_settings(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written."""
    positive_int("epochs", cfg.epochs)
    runs = positive_int("runs", cfg.runs)
    if runs > len(NOTEBOOK_RUNS):
        raise ConfigError(f"runs={runs} must be between 1 and {len(NOTEBOOK_RUNS)} (the notebook's runs)")
    if cfg.num_threads is not None:
        positive_int("num_threads", cfg.num_threads)
    resolve_device(cfg.device, setting="device")
    for flag in ("progress", "download", "overwrite"):
        boolean(flag, cfg[flag])
    for run in NOTEBOOK_RUNS[:runs]:
        if run.optimizer not in cfg.optimizers:
            raise ConfigError(f"optimizers.{run.optimizer} is missing; the {run.label} run needs it")
        check_optimizer(cfg.optimizers[run.optimizer], setting=f"optimizers.{run.optimizer}")


def run_config(cfg: DictConfig, run: PublishedRun) -> dict[str, Any]:
    """The run's config composed from conf/train.yaml by Hydra, as `cnnlab-train` would compose it with the notebook's
    settings as overrides, so the run directory is a normal one, marked `protocol: notebook`."""
    plain = to_plain(cfg)
    optimizer = plain["optimizers"][run.optimizer]
    settings = {
        **{f"optimizer.{k}": v for k, v in optimizer.items() if k != "name" and not k.startswith("_")},
        **{f"paths.{k}": v for k, v in plain["paths"].items()},
        "paths.runs_dir": plain["paths"]["replay_dir"],
        "data.download": plain["download"],
        "data.split_seed": None,  # random_split on the notebook's stream (seed 42), not cnnlab's split
        "data.val_size": notebook.VAL_SIZE,
        "data.batch_size": notebook.BATCH_SIZE,
        "data.eval_batch_size": notebook.BATCH_SIZE,
        "model.batch_norm": run.batch_norm,
        "trainer.epochs": plain["epochs"],
        "trainer.device": plain["device"],
        "trainer.progress": plain["progress"],
        "trainer.precision": "fp32",
        "trainer.channels_last": False,
        "trainer.num_threads": plain["num_threads"],
        "seed": notebook.SEED,
        "task_name": plain["task_name"],
        "overwrite": plain["overwrite"],
    }
    overrides = [f"optimizer={run.optimizer}", f"+protocol={PROTOCOL}"]
    overrides += [f"{key}={override_value(value)}" for key, value in settings.items()]
    return to_plain(compose_config("train", overrides))


def replay(cfg: DictConfig) -> dict[str, Any]:
    """What replay-e<epochs>.json holds once the first `runs` notebook runs are replayed (or were already)."""
    check_replay_settings(cfg)
    runs = NOTEBOOK_RUNS[: cfg.runs]
    replay_dir = Path(cfg.paths.replay_dir)
    path = summary_path(replay_dir, cfg.epochs)
    previous = load_replay(replay_dir, cfg.epochs) or {"runs": {}}
    if not cfg.overwrite and all(run.key in previous["runs"] for run in runs):
        log.info("%s already holds these runs; overwrite=true replays them again", path)
        return previous

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device, setting="device")
    ensure_files(MNIST_SPEC, cfg.paths.data_dir, download=cfg.download)
    test_split = to_float(read_raw(MNIST_SPEC, cfg.paths.data_dir, train=False))

    notebook.seed_notebook()
    loaders = notebook.notebook_loaders(cfg.paths.data_dir)
    summary = {
        "protocol": PROTOCOL,
        "epochs": cfg.epochs,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.version.__version__,
        "runs": dict(previous["runs"]),
    }
    for run in runs:
        entry = replay_run(cfg, run, loaders, test_split, device)
        summary["runs"][run.key] = entry
        summary["updated_at"] = now()
        write_json(path, summary)
        if run.key == INTERLUDE_AFTER:
            notebook.interlude(loaders.test)
    return summary


@dataclass
class NotebookSteps:
    """The notebook's epoch: its DataLoaders on the one random stream, and evaluation that never calls eval()."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loaders: notebook.Loaders
    test_split: Split  # the test images as tensors, for the eval-mode score and the prediction grid
    device: torch.device
    progress: bool
    published: PublishedRun

    # the notebook's loaders always hold all of MNIST's training file but the validation images, in batches of 64
    batch_size = notebook.BATCH_SIZE
    train_images = MNIST_SPEC.train_size - notebook.VAL_SIZE
    steps_per_epoch = math.ceil(train_images / batch_size)

    def train(self, epoch: int, on_step: StepHook | None = None) -> float:
        """One epoch over the shuffled loader; the mean of the per-batch losses."""
        if on_step is not None:  # the notebook's validation updates batch norm's statistics: it must not run mid-epoch
            raise ValueError("the notebook replay validates only after each epoch")
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        description = f"{self.published.label} epoch {epoch}"
        for x, y in tqdm(self.loaders.train, desc=description, disable=not self.progress, leave=False, unit="batch"):
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        return total.item() / len(self.loaders.train)

    def validate(self) -> Evaluation:
        return notebook.training_mode_pass(self.model, self.loaders.val, self.device)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def test(self, history: Sequence[Mapping[str, Any]]) -> TestOutcome:
        """Eval mode first (on the final weights), then the notebook's training-mode pass, which folds the test batches
        into batch norm's running statistics; the engine saved the final weights before either."""
        eval_mode = evaluate(self.model, self.test_split.to(self.device), batch_size=1000)
        test = notebook.training_mode_pass(self.model, self.loaders.test, self.device)
        scores = {"accuracy": test.accuracy, "loss": test.loss, "mode": "training (as the notebook evaluated)"}
        extra = {
            "test_eval_mode": {"accuracy": eval_mode.accuracy, "loss": eval_mode.loss},
            "notebook_replay": compare_run(self.published, history, test.accuracy, eval_mode.accuracy),
        }
        return TestOutcome(self.test_split, test.predictions.numpy(), scores, extra)


def replay_run(
    cfg: DictConfig, published: PublishedRun, loaders: notebook.Loaders, test_split: Split, device: torch.device
) -> dict[str, Any]:
    """One notebook run through the training engine, into a normal run directory held under its lock."""
    plain = run_config(cfg, published)
    run_dir = run_dir_for(plain)
    model = build_model(plain["model"]).to(device)
    optimizer = build_optimizer(plain["optimizer"], model.parameters())
    description = run_description(plain, model, MNIST_SPEC.image_shape, device)
    title = f"{published.label} (notebook replay)"
    run = RunState(
        run_dir, plain, model, optimizer, torch.default_generator, description, label=published.label, title=title
    )
    steps = NotebookSteps(model, optimizer, loaders, test_split, device, cfg.progress, published)
    with locked_run_dir(run_dir):
        result = execute(run, steps, epochs=cfg.epochs, classes=MNIST_SPEC.classes)
    comparison = result.metrics["notebook_replay"]
    log.info("%s eval-mode test accuracy %.2f%%", published.label, comparison["test_accuracy_eval_mode"])
    return {"run_dir": str(run_dir), **comparison}
