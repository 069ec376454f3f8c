"""Named comparisons and the settings they share. A module registers its comparisons with `@register(name)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.bench.timing import Comparison


@dataclass(frozen=True)
class BenchJob:
    """One training configuration of the report's sweep: its label, optimizer group and model group as plain data."""

    name: str
    optimizer: dict[str, Any]
    model: dict[str, Any]


@dataclass(frozen=True)
class BenchContext:
    """What every comparison may use: data, the configurations, repeat counts and a scratch folder."""

    data_root: Path
    data_name: str
    optimizer: dict[str, Any]  # the single-run comparisons' optimizer group (Adam, as the issue asks)
    model: dict[str, Any]
    jobs: Sequence[BenchJob]  # the report's six runs, for the sweep comparison
    batch_size: int
    train_batches: int  # batches per timed training pass
    sweep_batches: int  # batches per job in the sweep comparison
    sweep_jobs: int  # parallel one-thread jobs (cores)
    memory_subset: int | None  # training images in the peak-memory run (None: the full 50,000)
    untargeted_steps: int  # ascent steps per image in the untargeted comparison
    targeted_steps: int  # ascent steps per image in the targeted comparison
    repeats: int
    warmup: int
    seed: int
    scratch: Path


Measure = Callable[[BenchContext], list[Comparison]]
COMPARISONS: dict[str, Measure] = {}


def register(name: str) -> Callable[[Measure], Measure]:
    def add(fn: Measure) -> Measure:
        if name in COMPARISONS:
            raise ValueError(f"comparison {name!r} is registered twice")
        COMPARISONS[name] = fn
        return fn

    return add
