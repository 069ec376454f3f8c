"""Mini-batches by indexing preloaded tensors: no per-sample transforms or worker processes in the hot loop."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from cnnlab.data.splits import Split


class Batches:
    """Iterate (x, y) batches of a split, reshuffled each pass by `generator` when `shuffle` is set.

    The permutation is drawn on the CPU generator (so the order is the same on every device) and moved to the
    data's device once per pass.
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if shuffle and generator is None:
            raise ValueError("a shuffled Batches needs a seeded generator")
        self.split, self.batch_size, self.shuffle, self.generator = split, batch_size, shuffle, generator

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.split.x, self.split.y
        order = torch.randperm(len(y), generator=self.generator).to(y.device) if self.shuffle else None
        for start in range(0, len(y), self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start : start + self.batch_size]
            yield x[index], y[index]
