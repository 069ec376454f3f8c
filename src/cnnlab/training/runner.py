"""Train one configuration into its run directory: resume if unfinished, reuse if finished, record everything.

`train(cfg)` is what `cnnlab-train` calls; it takes a composed config and never reads Hydra's globals, so a test or a
notebook can call it directly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from omegaconf import DictConfig, OmegaConf

import cnnlab
from cnnlab.atomic import write_json, write_text
from cnnlab.checks import boolean, one_of, positive_float, positive_int
from cnnlab.config import to_plain
from cnnlab.data import Batches, Splits, get_spec, load_splits
from cnnlab.device import fast_bf16, resolve_device
from cnnlab.errors import CheckpointError
from cnnlab.models import build_model, count_neurons, count_parameters
from cnnlab.runs.checkpoint import load_checkpoint, load_weights, restore_rng_state, rng_state, save_checkpoint
from cnnlab.runs.layout import CHECKPOINT, LAST, METRICS, config_name, identity, run_dir_for
from cnnlab.runs.lock import run_lock
from cnnlab.runs.status import read_metrics
from cnnlab.training.artifacts import epoch_entry, history_summary, write_curves, write_history, write_test_results
from cnnlab.training.loggers import NullLogger, check_logger, open_logger
from cnnlab.training.loop import evaluate, train_epoch
from cnnlab.training.optimizers import build_optimizer

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
FINAL_STATUSES = ("finished", "diverged")  # deterministic outcomes: re-running repeats them
DIVERGENCE_FACTOR = 100


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str  # finished | diverged
    metrics: dict[str, Any]
    reused: bool = False


def check_settings(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written."""
    positive_int("trainer.epochs", cfg.trainer.epochs)
    boolean("model.batch_norm", cfg.model.batch_norm)
    positive_float("optimizer.lr", cfg.optimizer.lr)
    positive_int("data.batch_size", cfg.data.batch_size)
    positive_int("data.eval_batch_size", cfg.data.eval_batch_size)
    if cfg.data.subset is not None:
        positive_int("data.subset", cfg.data.subset)
    one_of("trainer.precision", cfg.trainer.precision, PRECISIONS)
    if cfg.trainer.num_threads is not None:
        positive_int("trainer.num_threads", cfg.trainer.num_threads)
    get_spec(cfg.data.name)
    resolve_device(cfg.trainer.device)
    check_logger(cfg.get("logger"))


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


def seed_everything(seed: int) -> None:
    """Seed every global stream so a run never depends on what ran before it in the same process."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    return {
        "cnnlab": cnnlab.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_description(
    plain: dict[str, Any], model: torch.nn.Module, image_shape: tuple[int, ...], device: torch.device
) -> dict[str, Any]:
    """The part of metrics.json fixed when a run starts: what it is, where it lives, counts, device and versions."""
    data, opt, trainer = plain["data"], plain["optimizer"], plain["trainer"]
    return {
        "name": config_name(plain),
        "run_dir": str(run_dir_for(plain)),
        "seed": plain["seed"],
        "summary": {
            "data": data["name"],
            "optimizer": opt["name"],
            "lr": opt["lr"],
            "batch_norm": bool(plain["model"]["batch_norm"]),
            "epochs": trainer["epochs"],
            "batch_size": data["batch_size"],
            "subset": data["subset"],
            "precision": trainer["precision"],
            "protocol": plain.get("protocol") or "standard",
        },
        "params": count_parameters(model),
        "neurons": count_neurons(model, image_shape),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "started_at": now(),
        "config": plain,
    }


def write_metrics(
    run_dir: Path, status: str, base: dict[str, Any], history: list[dict[str, Any]], train_time: float, **extra: Any
) -> dict[str, Any]:
    """Publish metrics.json atomically: readers see the previous state or the new one, never a mix."""
    metrics = {"status": status, **base, "history": history, "train_time_s": round(train_time, 3), **extra}
    write_json(run_dir / METRICS, metrics)
    return metrics


def start_run_dir(run_dir: Path, plain: dict[str, Any]) -> str:
    """Create the run directory and its human-readable config.yaml; returns that YAML."""
    make_run_dir(run_dir)
    config_yaml = OmegaConf.to_yaml(plain)
    write_text(run_dir / "config.yaml", config_yaml)
    return config_yaml


def _reuse(run_dir: Path, overwrite: bool) -> RunResult | None:
    """The recorded outcome when the run already finished or diverged (and overwrite is off), else None."""
    previous = read_metrics(run_dir)
    if previous.get("status") not in FINAL_STATUSES or overwrite:
        return None
    outcome = f"test accuracy {previous['test']['accuracy']:.2f}%" if "test" in previous else "diverged"
    log.info("%s is already %s (%s); overwrite=true retrains it", run_dir, previous["status"], outcome)
    return RunResult(run_dir, previous["status"], previous, reused=True)


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(
            f"cannot create run directory {run_dir} ({err.strerror}); "
            "point paths.output_dir (or paths.runs_dir) at a writable folder"
        ) from None


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Temporary files a killed process left behind (never renamed, so never part of the run's state)."""
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def train(cfg: DictConfig) -> RunResult:
    """Train `cfg` into its run directory, holding the directory's lock so no second process writes there at once."""
    check_settings(cfg)
    plain = to_plain(cfg)
    run_dir = run_dir_for(plain)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} exists and is a file")
    if reused := _reuse(run_dir, cfg.overwrite):
        return reused
    splits = load_splits(
        get_spec(cfg.data.name),
        cfg.data.root,
        split_seed=cfg.data.split_seed,
        val_size=cfg.data.val_size,
        subset=cfg.data.subset,
        normalize=cfg.data.normalize,
        download=cfg.data.download,
    )
    make_run_dir(run_dir)
    with run_lock(run_dir):
        # another process may have finished this run while we loaded the data
        if reused := _reuse(run_dir, cfg.overwrite):
            return reused
        _remove_stale_temp_files(run_dir)
        return _train_locked(cfg, plain, run_dir, splits)


def _train_locked(cfg: DictConfig, plain: dict[str, Any], run_dir: Path, splits: Splits) -> RunResult:
    """Resume from last.pt or start fresh, train, evaluate and record; the caller holds the run directory's lock."""
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.precision == "bf16" and not fast_bf16(device):
        log.warning(
            "trainer.precision=bf16: this %s has no fast bf16 kernels, so bf16 runs slower than fp32", device.type
        )
    spec = splits.spec
    seed_everything(cfg.seed)
    train_split, val_split, test_split = (s.to(device) for s in (splits.train, splits.val, splits.test))
    model = build_model(cfg.model).to(device)
    memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = Batches(train_split, cfg.data.batch_size, shuffle=True, generator=generator)

    history: list[dict[str, Any]] = []
    train_time = 0.0
    last_path = run_dir / LAST
    if last_path.exists() and not cfg.overwrite:
        state = load_checkpoint(last_path, map_location=device)
        if identity(state["config"]) != identity(plain) or state["config"]["seed"] != cfg.seed:
            raise CheckpointError(
                f"{last_path} was written by a different configuration; delete it or pass overwrite=true"
            )
        load_weights(model, state["model"], last_path)
        load_weights(optimizer, state["optimizer"], last_path)
        restore_rng_state(state["rng"], generator)
        history, train_time = list(state["history"]), float(state["train_time_s"])
        log.info("resuming %s after epoch %d", run_dir, state["epoch"])

    base = run_description(plain, model, spec.image_shape, device)

    def snapshot(epoch: int) -> dict[str, Any]:
        """Everything needed to continue after `epoch` (or to analyse the run): weights, optimizer, RNG, history."""
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "history": history,
            "train_time_s": train_time,
            "config": plain,
            "rng": rng_state(generator),
        }

    def record(status: str, **extra: Any) -> dict[str, Any]:
        return write_metrics(run_dir, status, base, history, train_time, **extra)

    label = f"{cfg.optimizer.name}{'+BN' if cfg.model.batch_norm else ''} seed {cfg.seed}"
    logger = NullLogger()
    try:  # from the first write on, any exception (Ctrl-C included) is recorded as failed
        config_yaml = start_run_dir(run_dir, plain)
        record("running")
        logger = open_logger(cfg.get("logger"), run_dir, first_epoch=len(history) + 1, config_yaml=config_yaml)
        for epoch in range(len(history) + 1, cfg.trainer.epochs + 1):
            start = time.perf_counter()
            mean_loss = train_epoch(
                model, batches, optimizer, cfg.trainer.precision, memory_format, cfg.trainer.progress, f"epoch {epoch}"
            )
            train_loss = mean_loss.item()
            train_seconds = time.perf_counter() - start
            val = evaluate(model, val_split, cfg.data.eval_batch_size, cfg.trainer.precision, memory_format)
            epoch_seconds = time.perf_counter() - start
            train_time += epoch_seconds
            history.append(
                epoch_entry(epoch, train_loss, val.loss, val.accuracy, epoch_seconds, train_seconds, len(train_split))
            )
            log.info(
                "%s epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.2f%%  %.1fs  %.0f img/s",
                label,
                epoch,
                cfg.trainer.epochs,
                train_loss,
                val.loss,
                val.accuracy,
                epoch_seconds,
                history[-1]["images_per_s"],
            )
            write_history(run_dir, history)
            logger.log_epoch(history[-1])
            if reason := divergence(train_loss, val.loss, len(spec.classes)):
                log.error("%s diverged at epoch %d: %s; try a smaller optimizer.lr", label, epoch, reason)
                metrics = record("diverged", finished_at=now(), diverged_at_epoch=epoch, diverged_because=reason)
                return RunResult(run_dir, "diverged", metrics)
            save_checkpoint(last_path, snapshot(epoch))
            record("running")

        test = evaluate(model, test_split, cfg.data.eval_batch_size, cfg.trainer.precision, memory_format)
        predictions = test.predictions.numpy()
        report = write_test_results(run_dir, splits.test, predictions, splits.classes, label, cfg.seed)
        write_curves(run_dir, history, label)
        logger.log_test(
            len(history), test.accuracy, test.loss, [run_dir / "curves.png", run_dir / "confusion_matrix.png"]
        )
        save_checkpoint(run_dir / CHECKPOINT, snapshot(len(history)))
        metrics = record(
            "finished",
            finished_at=now(),
            test={"accuracy": test.accuracy, "loss": test.loss},
            **history_summary(history),
            classification_report=report,
        )
        last_path.unlink(missing_ok=True)
    except BaseException as err:
        with contextlib.suppress(OSError):  # a full disk must not hide the original error
            record("failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        logger.close()
    log.info("%s test accuracy %.2f%% in %.1fs -> %s", label, test.accuracy, train_time, run_dir)
    return RunResult(run_dir, "finished", metrics)
