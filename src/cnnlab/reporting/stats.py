"""Summaries over seeds: mean, sample standard deviation, range and the t-interval of the mean."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample standard deviation (n - 1); None for one value
    min: float
    max: float
    ci: tuple[float, float] | None  # t-interval of the mean at `confidence`; None for one value

    def contains(self, value: float) -> bool | None:
        """Whether `value` lies in the interval; None when there is no interval to judge by."""
        return None if self.ci is None else self.ci[0] <= value <= self.ci[1]


def summarize(values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> Summary:
    """Summary of at least one value. The interval uses Student's t with n - 1 degrees of freedom, cut to `bounds`
    when given: with few seeds and one outlying seed the t-interval of an accuracy can pass 100%, which no mean can."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("summarize needs at least one value")
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, None, mean, mean, None)
    std = statistics.stdev(values)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Summary(n, mean, std, min(values), max(values), (low, high))


def spread(s: Summary, digits: int = 2) -> str:
    """`mean ± std (min–max)`, or the single value when there is one."""
    if s.std is None:
        return f"{s.mean:.{digits}f}"
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f} ({s.min:.{digits}f}–{s.max:.{digits}f})"


def interval(s: Summary, digits: int = 2) -> str:
    return "n/a (n=1)" if s.ci is None else f"[{s.ci[0]:.{digits}f}, {s.ci[1]:.{digits}f}]"
