"""Time competing implementations fairly: interleaved repeats, warm-up excluded, medians; one record per comparison."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timed:
    """Seconds per repeat after warm-up and what each call returned (warm-up included, for result checks)."""

    seconds: list[float]
    outputs: list[Any]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    *,
    sync: Callable[[], None] | None = None,
) -> dict[str, Timed]:
    """Call every function once per round, round after round, so machine noise hits all sides alike.

    The first `warmup` rounds are not timed (allocator, thread pools, lazy imports); medians come from `repeats` rounds.
    `sync` runs inside each timed call, after the function returns: on a GPU it waits for the kernels the call queued.
    """
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    outputs: dict[str, list[Any]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outputs[name].append(fn())
            if sync is not None:
                sync()
            if round_ >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: Timed(seconds[name], outputs[name]) for name in fns}


@dataclass(frozen=True)
class Comparison:
    """One line of the benchmark: the report-style baseline against cnnlab doing the same work.

    `baseline` is None for a measurement with nothing to compare against (then `target` says what is required).
    `same_result` says whether both sides computed the same thing (`details` holds the tolerance and the deviation).
    """

    name: str
    unit: str
    baseline: float | None
    cnnlab: float
    same_result: bool | None
    higher_is_better: bool = True
    target: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.cnnlab == 0:
            return None
        return self.cnnlab / self.baseline if self.higher_is_better else self.baseline / self.cnnlab

    def to_json(self) -> dict[str, Any]:
        speedup = self.speedup
        return {**asdict(self), "speedup": None if speedup is None else round(speedup, 3)}
