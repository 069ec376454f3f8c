"""Replay the notebook's runs in one process and write each as a normal run directory marked `protocol: notebook`.

`replay(cfg)` is what `cnnlab-replay` calls. It owns `paths.replay_dir`: one run directory per notebook run (the
usual files, so every analysis can read them) and `replay-e<epochs>.json`, the comparison with the published numbers.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from cnnlab.atomic import write_json
from cnnlab.checks import positive_int
from cnnlab.config import to_plain
from cnnlab.data import MNIST_SPEC, Split, ensure_files
from cnnlab.data.splits import read_split
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError
from cnnlab.models import build_model
from cnnlab.replay import notebook
from cnnlab.replay.published import INTERLUDE_AFTER, NOTEBOOK_RUNS, PublishedRun
from cnnlab.replay.results import compare_run, load_replay, summary_path
from cnnlab.runs.checkpoint import rng_state, save_checkpoint
from cnnlab.runs.layout import CHECKPOINT, run_dir_for
from cnnlab.training.artifacts import epoch_entry, history_summary, write_curves, write_history, write_test_results
from cnnlab.training.loop import evaluate
from cnnlab.training.optimizers import build_optimizer
from cnnlab.training.runner import now, run_description, start_run_dir, write_metrics

log = logging.getLogger(__name__)

PROTOCOL = "notebook"


@dataclass(frozen=True)
class ReplayResult:
    path: Path  # replay-e<epochs>.json
    summary: dict[str, Any]
    reused: bool = False


def check_settings(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written."""
    positive_int("epochs", cfg.epochs)
    runs = positive_int("runs", cfg.runs)
    if runs > len(NOTEBOOK_RUNS):
        raise ConfigError(f"runs={runs} must be between 1 and {len(NOTEBOOK_RUNS)} (the notebook's runs)")
    if cfg.num_threads is not None:
        positive_int("num_threads", cfg.num_threads)
    resolve_device(cfg.device, setting="device")
    for run in NOTEBOOK_RUNS[:runs]:
        if run.optimizer not in cfg.optimizers:
            raise ConfigError(f"optimizers.{run.optimizer} is missing; the {run.label} run needs it")


def run_config(cfg: DictConfig, run: PublishedRun) -> dict[str, Any]:
    """A resolved config shaped like cnnlab-train's, so the run directory is a normal one, marked
    `protocol: notebook`."""
    plain = to_plain(cfg)
    paths = {**plain["paths"], "runs_dir": plain["paths"]["replay_dir"]}
    return {
        "data": {
            "name": MNIST_SPEC.name,
            "root": paths["data_dir"],
            "download": plain["download"],
            "split_seed": None,  # random_split on the notebook's stream (seed 42), not cnnlab's split
            "val_size": notebook.VAL_SIZE,
            "subset": None,
            "normalize": False,
            "batch_size": notebook.BATCH_SIZE,
            "eval_batch_size": notebook.BATCH_SIZE,
        },
        "model": {"name": "simple_cnn", "batch_norm": run.batch_norm},
        "optimizer": plain["optimizers"][run.optimizer],
        "trainer": {
            "epochs": plain["epochs"],
            "device": plain["device"],
            "progress": plain["progress"],
            "precision": "fp32",
            "channels_last": False,
            "num_threads": plain["num_threads"],
        },
        "paths": paths,
        "seed": notebook.SEED,
        "protocol": PROTOCOL,
        "task_name": plain["task_name"],
        "overwrite": plain["overwrite"],
    }


def replay(cfg: DictConfig) -> ReplayResult:
    check_settings(cfg)
    runs = NOTEBOOK_RUNS[: cfg.runs]
    replay_dir = Path(cfg.paths.replay_dir)
    path = summary_path(replay_dir, cfg.epochs)
    previous = load_replay(replay_dir, cfg.epochs) or {"runs": {}}
    if not cfg.overwrite and all(run.key in previous["runs"] for run in runs):
        log.info("%s already holds these runs; overwrite=true replays them again", path)
        return ReplayResult(path, previous, reused=True)

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device, setting="device")
    ensure_files(MNIST_SPEC, cfg.paths.data_dir, download=cfg.download)
    test_split = read_split(MNIST_SPEC, cfg.paths.data_dir, train=False)

    notebook.seed_notebook()
    loaders = notebook.notebook_loaders(cfg.paths.data_dir)
    summary = {
        "protocol": PROTOCOL,
        "epochs": cfg.epochs,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": dict(previous["runs"]),
    }
    for run in runs:
        entry = replay_run(cfg, run, loaders, test_split, device)
        summary["runs"][run.key] = entry
        summary["updated_at"] = now()
        write_json(path, summary)
        if run.key == INTERLUDE_AFTER:
            notebook.interlude(loaders.test)
    return ReplayResult(path, summary)


def replay_run(
    cfg: DictConfig, run: PublishedRun, loaders: notebook.Loaders, test_split: Split, device: torch.device
) -> dict[str, Any]:
    """One notebook run: build, train with training-mode validation each epoch, test; then write its run directory."""
    plain = run_config(cfg, run)
    run_dir = run_dir_for(plain)
    model = build_model(plain["model"]).to(device)
    optimizer = build_optimizer(plain["optimizer"], model.parameters())
    base = run_description(plain, model, MNIST_SPEC.image_shape, device)
    history: list[dict[str, Any]] = []
    train_time = 0.0

    def record(status: str, **extra: Any) -> dict[str, Any]:
        return write_metrics(run_dir, status, base, history, train_time, **extra)

    start_run_dir(run_dir, plain)
    record("running")
    try:
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            train_loss = notebook.train_pass(
                model, loaders.train, optimizer, device, cfg.progress, f"{run.label} epoch {epoch}"
            )
            train_seconds = time.perf_counter() - start
            val = notebook.training_mode_pass(model, loaders.val, device)
            epoch_seconds = time.perf_counter() - start
            train_time += epoch_seconds
            images = len(loaders.train.dataset)
            history.append(epoch_entry(epoch, train_loss, val.loss, val.accuracy, epoch_seconds, train_seconds, images))
            log.info(
                "%s epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.2f%%  %.1fs",
                run.label,
                epoch,
                cfg.epochs,
                train_loss,
                val.loss,
                val.accuracy,
                epoch_seconds,
            )
            write_history(run_dir, history)

        # The final weights, before the notebook's training-mode test pass folds test batches into batch norm's
        # running statistics: the checkpoint keeps these, and eval mode is judged on them.
        final_state = copy.deepcopy(model.state_dict())
        eval_mode = evaluate(model, test_split.to(device), batch_size=1000)
        test = notebook.training_mode_pass(model, loaders.test, device)
        report = write_test_results(
            run_dir,
            test_split,
            test.predictions.numpy(),
            MNIST_SPEC.classes,
            f"{run.label} (notebook replay)",
            notebook.SEED,
        )
        write_curves(run_dir, history, f"{run.label} (notebook replay)")
        checkpoint = {
            "model": final_state,
            "optimizer": optimizer.state_dict(),
            "epoch": len(history),
            "history": history,
            "train_time_s": train_time,
            "config": plain,
            "rng": rng_state(torch.default_generator),
        }
        save_checkpoint(run_dir / CHECKPOINT, checkpoint)
        comparison = compare_run(run, history, test.accuracy, eval_mode.accuracy)
        record(
            "finished",
            finished_at=now(),
            test={"accuracy": test.accuracy, "loss": test.loss, "mode": "training (as the notebook evaluated)"},
            test_eval_mode={"accuracy": eval_mode.accuracy, "loss": eval_mode.loss},
            **history_summary(history),
            classification_report=report,
            notebook_replay=comparison,
        )
    except BaseException as err:
        record("failed", error=f"{type(err).__name__}: {err}")
        raise
    log.info(
        "%s test accuracy %.2f%% (training mode), %.2f%% (eval mode) -> %s",
        run.label,
        test.accuracy,
        eval_mode.accuracy,
        run_dir,
    )
    return {"run_dir": str(run_dir), **comparison}
