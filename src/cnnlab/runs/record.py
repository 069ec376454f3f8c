"""What a run writes about itself: the run directory, config.yaml, and metrics.json's fixed and changing parts.

Every kind of run (`cnnlab-train`, the notebook replay) records through here, so metrics.json has one shape.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

import cnnlab
from cnnlab.atomic import write_json, write_text
from cnnlab.device import describe_device
from cnnlab.errors import CheckpointError
from cnnlab.models import count_neurons, count_parameters
from cnnlab.runs.layout import METRICS, config_name, run_dir_for, settings_of
from cnnlab.runs.lock import LOCK
from cnnlab.runs.status import RunStatus

# the history's keys that time a run (seconds, throughput): they differ between two runs that compute the same
TIMINGS = frozenset({"epoch_time_s", "train_s", "images_per_s", "train_seconds"})


def pass_seconds(entry: dict[str, Any]) -> float:
    """Seconds of one history entry's training pass, evaluation excluded (for epochs recorded before `train_s` was
    kept: the epoch's time, its validation included)."""
    return entry.get("train_s", entry["epoch_time_s"])


def versions() -> dict[str, str]:
    return {
        "cnnlab": cnnlab.__version__,
        "torch": torch.version.__version__,
        "torchvision": torchvision_version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def torchvision_version() -> str:
    """torchvision's `__version__` (with its build tag, e.g. +cu130, which its distribution's metadata lacks), read
    from its version.py without importing torchvision, which would load its models and ops."""
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin is not None:
        text = Path(spec.origin).with_name("version.py").read_text(errors="replace")
        if match := re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, re.MULTILINE):
            return match.group(1)
    return metadata.version("torchvision")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_description(
    plain: dict[str, Any], model: torch.nn.Module, image_shape: tuple[int, ...], device: torch.device
) -> dict[str, Any]:
    """The part of metrics.json fixed when a run starts: what it is, where it lives, counts, device and versions."""
    return {
        "name": config_name(plain),
        "run_dir": str(run_dir_for(plain)),
        "seed": plain["seed"],
        "summary": {
            **settings_of(plain),
            "precision": plain["trainer"]["precision"],
            "protocol": plain.get("protocol") or "standard",
        },
        "params": count_parameters(model),
        "neurons": count_neurons(model, image_shape),
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "started_at": now(),
        "config": plain,
    }


def write_metrics(
    run_dir: Path,
    status: RunStatus,
    base: dict[str, Any],
    history: list[dict[str, Any]],
    train_time: float,
    **extra: Any,
) -> dict[str, Any]:
    """Publish metrics.json atomically: readers see the previous state or the new one, never a mix."""
    metrics = {"status": status, **base, "history": history, "train_time_s": round(train_time, 3), **extra}
    write_json(run_dir / METRICS, metrics)
    return metrics


def make_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} exists and is a file")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(
            f"cannot create run directory {run_dir} ({err.strerror}); "
            "point paths.output_dir (or paths.runs_dir) at a writable folder"
        ) from None


def write_config(run_dir: Path, plain: dict[str, Any]) -> None:
    """The run's human-readable config.yaml."""
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(plain))


def remove_stale_temp_files(folder: Path) -> None:
    """Temporary files a killed process left behind (never renamed, so never part of anything's state)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def clear_results(run_dir: Path) -> None:
    """Delete everything but the lock an earlier attempt left in `run_dir` (checkpoints, metrics, figures, analyses),
    so that a retrain interrupted midway can never leave an old result looking current."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
