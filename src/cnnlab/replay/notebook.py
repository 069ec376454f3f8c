"""The original notebook's data pipeline and evaluation, drawing from torch's default generator exactly as it did.

Deliberately not cnnlab's fast tensor pipeline: a replay is only exact if every random draw happens in the same order,
and the draws come from these torchvision/DataLoader objects. Every DataLoader iterator draws a base seed when it is
created, and the shuffled training loader's RandomSampler draws one more each epoch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms

from cnnlab.models import SimpleCNN
from cnnlab.training.loop import Evaluation

SEED = 42
BATCH_SIZE = 64
VAL_SIZE = 10_000


@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader


def seed_notebook() -> None:
    """The notebook's only seeding: once, at the top, for torch, numpy and random."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)


def notebook_loaders(root: str | Path) -> Loaders:
    """torchvision MNIST with ToTensor, random_split 50,000/10,000 on the default generator, batches of 64."""
    to_tensor = transforms.ToTensor()
    full_train = datasets.MNIST(str(root), train=True, download=False, transform=to_tensor)
    test = datasets.MNIST(str(root), train=False, download=False, transform=to_tensor)
    train, val = random_split(full_train, [len(full_train) - VAL_SIZE, VAL_SIZE])
    return Loaders(
        train=DataLoader(train, batch_size=BATCH_SIZE, shuffle=True),
        val=DataLoader(val, batch_size=BATCH_SIZE),
        test=DataLoader(test, batch_size=BATCH_SIZE),
    )


@torch.no_grad()
def training_mode_pass(model: nn.Module, loader: DataLoader, device: torch.device) -> Evaluation:
    """The notebook's evaluation: `no_grad` but never `model.eval()`, so batch norm normalises each batch by its own
    statistics and folds the evaluated data into its running statistics. Without batch norm this changes nothing.

    Its loss is the notebook's: the mean of the per-batch mean losses (the last, smaller batch weighs as much as the
    others)."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    predictions, labels = [], []
    for x, y in loader:
        logits = model(x.to(device))
        total += F.cross_entropy(logits, y.to(device))
        predictions.append(logits.argmax(dim=1).cpu())
        labels.append(y)
    predicted, targets = torch.cat(predictions), torch.cat(labels)
    accuracy = 100.0 * (predicted == targets).sum().item() / len(targets)
    return Evaluation(loss=total.item() / len(loader), accuracy=accuracy, predictions=predicted)


def interlude(test_loader: DataLoader) -> None:
    """The three draws the notebook made between its Adam and SGD+BN runs: a fresh SimpleCNN (to load the saved best
    model), one test-loader iterator (the prediction grid) and the model summary's random input."""
    SimpleCNN()
    next(iter(test_loader))
    torch.rand(2, 1, 28, 28)
