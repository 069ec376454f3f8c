"""Named comparisons and the settings they share. A module registers its comparisons with `@register(name)`; one that
measures the CPU path alone (parallel CPU processes, a process's resident memory) says so with `cpu_only=True`, and
one that takes too long for every benchmark run (whole training runs) runs only when named, with `opt_in=True`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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
    tracking_epochs: int  # epochs of each whole run in the tracking comparison
    repeats: int
    warmup: int
    seed: int
    scratch: Path
    device: torch.device = torch.device("cpu")  # where both sides' models and data sit (conf/bench.yaml's `device`)

    def synchronize(self) -> None:
        """Wait for the work queued on the device, so a timed call ends when its work does (a no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


Measure = Callable[[BenchContext], list[Comparison]]
COMPARISONS: dict[str, Measure] = {}
CPU_ONLY: set[str] = set()  # comparisons that run only with device=cpu
OPT_IN: set[str] = set()  # comparisons that run only when `only` names them


def register(name: str, *, cpu_only: bool = False, opt_in: bool = False) -> Callable[[Measure], Measure]:
    def add(fn: Measure) -> Measure:
        if name in COMPARISONS:
            raise ValueError(f"comparison {name!r} is registered twice")
        COMPARISONS[name] = fn
        if cpu_only:
            CPU_ONLY.add(name)
        if opt_in:
            OPT_IN.add(name)
        return fn

    return add
