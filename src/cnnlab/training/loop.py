"""One training epoch and one evaluation pass. No host sync per batch: sums stay on the device until the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from cnnlab.data import Batches, Split
from cnnlab.training.step import TrainStep, autocast

StepHook = Callable[[int], None]  # called after each optimizer step with its 1-based number within the epoch


def train_epoch(
    model: nn.Module,
    batches: Batches,
    step: TrainStep,
    *,
    progress: bool = False,
    description: str = "train",
    on_step: StepHook | None = None,
) -> Tensor:
    """Train for one pass over `batches` with `step` (`training.step.make_step`); returns the mean of the per-batch
    losses as a 0-d tensor on the device. `on_step` (e.g. an evaluation during the epoch) runs after each step and
    must leave the model in training mode."""
    model.train()
    total = torch.zeros((), device=next(model.parameters()).device)
    with tqdm(total=len(batches), desc=description, disable=not progress, leave=False, unit="batch") as bar:
        for number, (x, y) in enumerate(batches, start=1):
            total += step(x, y)
            bar.update()
            if on_step is not None:
                on_step(number)
    return total / len(batches)


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean cross-entropy per sample
    accuracy: float  # percent
    predictions: Tensor  # [N] on the CPU


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int = 1000,
    precision: str = "fp32",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Evaluation:
    """Loss, accuracy and predicted labels over a whole split, in eval mode (batch norm uses running statistics)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    predictions = []
    for x, y in Batches(split, batch_size):
        with autocast(device, precision):
            logits = model(x.contiguous(memory_format=memory_format))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    predicted = torch.cat(predictions)
    correct = (predicted == split.y).sum()
    loss, n_correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return Evaluation(loss=loss / len(split), accuracy=100.0 * n_correct / len(split), predictions=predicted.cpu())
