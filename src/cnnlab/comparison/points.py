"""A run's validation accuracy as a curve over training, and the first point where it reaches a target.

A run records a validation after every epoch and, with `trainer.eval_every`, during each epoch too (the engine's
`InEpochEvaluation`). Time to target is read off these points in two units: images seen (the same on every machine)
and training seconds (evaluation excluded; they depend on the device, which the run records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.runs.record import pass_seconds


@dataclass(frozen=True)
class ValidationPoint:
    epoch: float  # epochs trained at this point, e.g. 1.5 half way through the second
    step: int  # optimizer steps since the run began
    images_seen: int
    train_seconds: float  # training seconds since the run began, evaluation excluded
    val_accuracy: float  # percent


def validation_points(history: Sequence[Mapping[str, Any]]) -> list[ValidationPoint] | None:
    """Every validation of a run in training order, or None for a run recorded before steps and images were counted
    (it can only say which epoch reached a target)."""
    points, seconds = [], 0.0
    for entry in history:
        if "images_seen" not in entry:
            return None
        epoch, steps = entry["epoch"], entry["step"] // entry["epoch"]
        for p in entry.get("evals", ()):
            fraction = (p["step"] - (epoch - 1) * steps) / steps
            point = ValidationPoint(
                epoch - 1 + fraction, p["step"], p["images_seen"], p["train_seconds"], p["val_accuracy"]
            )
            points.append(point)
        seconds += pass_seconds(entry)
        points.append(ValidationPoint(epoch, entry["step"], entry["images_seen"], seconds, entry["val_accuracy"]))
    return points


def first_reach(points: Sequence[ValidationPoint], target: float) -> ValidationPoint | None:
    """The first point whose validation accuracy is at least `target` percent; None when none is."""
    return next((p for p in points if p.val_accuracy >= target), None)
