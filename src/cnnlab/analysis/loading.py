"""The one place an analysis finds a run: its checkpoint, the model rebuilt from the stored config, and the test set."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import Split, get_spec, load_splits
from cnnlab.device import resolve_device
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import SimpleCNN, analysis_copy
from cnnlab.runs.checkpoint import load_model
from cnnlab.runs.layout import CHECKPOINT
from cnnlab.runs.status import RunStatus, read_metrics


def checkpoint_path(run: str | Path) -> Path:
    """`run` is a finished run's directory (its checkpoint.pt is used) or a checkpoint file; a clear error if
    neither exists."""
    path = Path(run)
    if path.is_dir():
        status = read_metrics(path).get("status")
        if status is not None and status != RunStatus.FINISHED:
            # an interrupted retrain or a tuning trial: whatever checkpoint.pt is there is not this run's result
            raise CheckpointError(
                f"run {path} is not finished (status {status}); train it to the end with cnnlab-train, or name a "
                f"checkpoint file with checkpoint=<file> to analyse it anyway"
            )
        checkpoint = path / CHECKPOINT
        if not checkpoint.is_file():
            raise CheckpointError(f"run {path} has no {CHECKPOINT} (is the run finished?)")
        return checkpoint
    if not path.exists():
        raise CheckpointError(f"run {path} does not exist")
    return path


def run_or_checkpoint(run: str | None, checkpoint: str | None) -> Path:
    """Exactly one of the command line's `run=<dir>` and `checkpoint=<file>`."""
    if (run is None) == (checkpoint is None):
        raise ConfigError("give exactly one of run=<run dir> or checkpoint=<checkpoint file>")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint={checkpoint} is not a file")
    return Path(run if run is not None else checkpoint)  # type: ignore[arg-type]


@dataclass
class LoadedRun:
    """A trained model in eval mode on `device`, with what it was trained on.

    `classifier` takes images in pixel units ([0, 1], like ToTensor) whatever the run's `data.normalize`, so
    occlusion fill values and adversarial pixel ranges mean the same for every run; `model` is the bare network
    (for kernels and hooks).
    """

    checkpoint: Path
    config: dict[str, Any]
    model: SimpleCNN
    classifier: nn.Module
    device: torch.device
    data_dir: str | Path | None = None

    @cached_property
    def folded(self) -> nn.Module:
        """`classifier` as the analyses that only evaluate it and its input gradient (occlusion, the adversarial
        ascent) compute with it: batch norm folded into the layers and a faster input gradient (`analysis_copy`)."""
        return pixel_classifier(analysis_copy(self.model), self.config)

    @property
    def classes(self) -> tuple[str, ...]:
        return get_spec(self.config["data"]["name"]).classes

    @cached_property
    def test(self) -> Split:
        """The test split in pixel units, on the model's device (read on first use: filters never need it)."""
        data = self.config["data"]
        root = self.data_dir if self.data_dir is not None else data["root"]
        spec = get_spec(data["name"])
        splits = load_splits(spec, root, split_seed=data["split_seed"], val_size=data["val_size"], download=False)
        return splits.test.to(self.device)


def load_run(checkpoint: Path, device: str = "auto", data_dir: str | Path | None = None) -> LoadedRun:
    """Rebuild the model from the checkpoint's own config (the user never repeats `batch_norm`) and load its weights."""
    target = resolve_device(device, "device")
    model, state = load_model(checkpoint, map_location=target)
    config = state["config"]
    # channels_last as in training: batched convolutions run ~1.5-2.5x faster on CPU, results differ only by rounding
    model = model.to(target, memory_format=torch.channels_last).eval()
    return LoadedRun(checkpoint, config, model, pixel_classifier(model, config), target, data_dir)


def pixel_classifier(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """`model` taking images in pixel units: behind the run's normalisation when it trained on normalised images."""
    if not config.get("data", {}).get("normalize"):
        return model
    # imported here: torchvision (its models and ops) is over a second of a command's start-up, see data/splits.py
    from torchvision.transforms import Normalize

    spec = get_spec(config["data"]["name"])
    return nn.Sequential(Normalize((spec.mean,), (spec.std,)), model).eval()


@torch.no_grad()
def predict(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and its softmax probability for each image."""
    probs = torch.cat([classifier(chunk).softmax(dim=1) for chunk in images.split(batch_size)])
    confidence, predicted = probs.max(dim=1)
    return predicted, confidence
