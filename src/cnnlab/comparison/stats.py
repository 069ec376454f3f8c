"""Statistics for comparing optimizers over seeds, workloads and tuning trials, as the literature reports them: the
median time to target with a distribution-free interval, Dolan and Moré performance profiles, Dodge et al.'s expected
best result against the tuning budget, and paired tests with Holm-Bonferroni adjusted p-values.

Every function is pure: plain numbers in, frozen dataclasses out, nothing read or written.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from scipy import stats as scipy_stats

# Coverage is compared with the requested confidence up to rounding in the binomial sums.
_COVERAGE_SLACK = 1e-12


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
    return float(confidence)


# ---------------------------------------------------------------------------------------------------- median interval


@dataclass(frozen=True)
class MedianInterval:
    n: int  # seeds
    median: float  # inf when half or more of the seeds never reached the target
    low: float  # x_(rank): the rank-th smallest time
    high: float  # x_(n + 1 - rank); inf when that seed never reached the target
    reached: int  # seeds with a finite time
    coverage: float  # the interval's actual coverage, at least `confidence` unless n is too small for that
    rank: int  # j of the order statistics (x_(j), x_(n+1-j)) used as the interval


def _order_coverage(n: int, j: np.ndarray) -> np.ndarray:
    """P(x_(j) <= median <= x_(n+1-j)) for any continuous distribution: the number of the n values below the
    median is Binomial(n, 1/2), and the interval holds the median when that number lies in [j, n - j]."""
    return scipy_stats.binom.cdf(n - j, n, 0.5) - scipy_stats.binom.cdf(j - 1, n, 0.5)


def median_interval(values: Sequence[float], confidence: float = 0.95) -> MedianInterval:
    """Median of the times to target over seeds and its distribution-free confidence interval.

    `values` are times (images seen, seconds); `math.inf` marks a seed that never reached the target. Those seeds
    are kept: dropping them would make an optimizer that often fails look fast. The interval makes no assumption
    about the shape of the distribution (times to target are skewed and infinite ones have no mean): it is the
    narrowest pair of order statistics (x_(j), x_(n+1-j)) whose coverage under Binomial(n, 1/2) is at least
    `confidence`. With too few seeds even (min, max) covers less (n <= 5 at 95%); then (min, max) is returned with
    its actual `coverage`, 1 - 2 * 0.5**n, for the report to state. One seed gives low = high = median, coverage 0.
    """
    confidence = _check_confidence(confidence)
    x = sorted(float(v) for v in values)
    if not x:
        raise ValueError("median_interval needs at least one value")
    if any(math.isnan(v) or v == -math.inf for v in x):
        raise ValueError("times must be numbers or math.inf (never reached), not NaN or -inf")
    n = len(x)
    ranks = np.arange(1, n // 2 + 1)
    enough = ranks[_order_coverage(n, ranks) >= confidence - _COVERAGE_SLACK]
    rank = int(enough.max()) if enough.size else 1
    coverage = max(0.0, float(_order_coverage(n, np.array([rank]))[0]))
    return MedianInterval(
        n=n,
        median=statistics.median(x),
        low=x[rank - 1],
        high=x[n - rank],
        reached=sum(math.isfinite(v) for v in x),
        coverage=coverage,
        rank=rank,
    )


# ------------------------------------------------------------------------------------------------ performance profile


@dataclass(frozen=True)
class Profile:
    optimizers: list[str]
    workloads: list[str]
    taus: np.ndarray
    ratios: dict[str, dict[str, float]]  # workload -> optimizer -> time / best time on that workload (inf: not reached)
    rho: dict[str, np.ndarray]  # optimizer -> fraction of workloads with ratio <= tau, one per tau


def default_taus(tau_max: float, points: int = 200) -> np.ndarray:
    """`points` values of τ log-spaced from 1 to `tau_max`, both included: ratios are multiplicative (2x slower),
    so even spacing on a log axis gives every factor the same resolution."""
    if not tau_max >= 1:
        raise ValueError(f"the τ range [1, tau_max={tau_max!r}] is empty")
    if not math.isfinite(tau_max):
        raise ValueError(f"tau_max={tau_max!r} must be finite")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points={points!r} must be an integer >= 2 (the two ends of the range)")
    return np.geomspace(1.0, float(tau_max), points)


def _profile_optimizers(times: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The optimizers in the order first seen; every workload must time every one of them, because a profile
    compares each optimizer with the best on the same workloads."""
    if not times:
        raise ValueError("performance_profile needs at least one workload")
    optimizers = list(dict.fromkeys(name for per_optimizer in times.values() for name in per_optimizer))
    if not optimizers:
        raise ValueError("performance_profile needs at least one optimizer")
    for workload, per_optimizer in times.items():
        missing = [name for name in optimizers if name not in per_optimizer]
        if missing:
            raise ValueError(f"workload {workload!r} has no time for optimizer {missing[0]!r}")
    return optimizers


def _check_time(workload: str, optimizer: str, value: float) -> float:
    value = float(value)
    if math.isnan(value) or value <= 0:
        raise ValueError(
            f"time of {optimizer!r} on workload {workload!r} is {value!r}: a time must be > 0 or math.inf (never)"
        )
    return value


def _workload_ratios(workload: str, per_optimizer: Mapping[str, float], optimizers: list[str]) -> dict[str, float]:
    """time / best time; a workload no optimizer solved gives inf for all (no one earns credit on it)."""
    row = {name: _check_time(workload, name, per_optimizer[name]) for name in optimizers}
    best = min(row.values())
    if math.isinf(best):
        return dict.fromkeys(optimizers, math.inf)
    return {name: value / best for name, value in row.items()}


def performance_profile(times: Mapping[str, Mapping[str, float]], taus: Sequence[float]) -> Profile:
    """Dolan and Moré (2002) performance profiles, as AlgoPerf uses them to rank training algorithms.

    `times[workload][optimizer]` is the time to reach the workload's target (`math.inf`: never reached). On each
    workload the ratio r = time / (best time of any optimizer there); rho_o(τ) is the fraction of workloads on which
    optimizer o is within a factor τ of the best. rho_o(1) is how often o is the fastest and rho_o(τ) for large τ how
    often it reaches the target at all, so one curve shows both speed and reliability. Every workload must have a
    time for every optimizer (ValueError naming the workload and the optimizer otherwise).
    """
    optimizers = _profile_optimizers(times)
    tau_array = np.asarray(taus, dtype=float)
    if tau_array.ndim != 1:
        raise ValueError(f"taus must be one-dimensional, got shape {tau_array.shape}")
    ratios = {workload: _workload_ratios(workload, row, optimizers) for workload, row in times.items()}
    rho = {}
    for name in optimizers:
        per_workload = np.array([ratios[workload][name] for workload in ratios])
        rho[name] = (per_workload[None, :] <= tau_array[:, None]).mean(axis=1)
    return Profile(optimizers=optimizers, workloads=list(times), taus=tau_array, ratios=ratios, rho=rho)


# ------------------------------------------------------------------------------------------------- expected maximum


@dataclass(frozen=True)
class ExpectedMax:
    k: np.ndarray  # budgets 1..n
    mean: np.ndarray  # expected best value of k trials drawn from the n observed ones
    low: np.ndarray  # bootstrap percentile band at `confidence`
    high: np.ndarray
    n: int  # trials used (NaN ones dropped)
    dropped: int = 0  # NaN trials dropped


def _max_weights(n: int) -> np.ndarray:
    """W[k-1, i-1] = P(the best of k draws with replacement is the i-th smallest of n) = (i/n)^k - ((i-1)/n)^k."""
    k = np.arange(1, n + 1)[:, None]
    i = np.arange(1, n + 1)[None, :]
    return (i / n) ** k - ((i - 1) / n) ** k


def expected_max_curve(
    values: Sequence[float], *, boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> ExpectedMax:
    """Expected best result of k tuning trials, k = 1..n (Dodge et al. 2019, "Show Your Work").

    With the n trial results sorted v_(1) <= ... <= v_(n), the best of k draws with replacement from them is v_(i)
    with probability (i/n)^k - ((i-1)/n)^k. The curve shows what a tuning budget of k trials buys, so optimizers
    tuned with different numbers of trials can be compared at equal budgets. NaN results (failed trials) are
    dropped first; `dropped` says how many. The band resamples the n results with replacement `boot` times
    (numpy's Generator seeded with `seed`, so the band is reproducible) and takes the (1 - confidence)/2 and
    (1 + confidence)/2 percentiles of the resampled curves at each k.
    """
    confidence = _check_confidence(confidence)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 1:
        raise ValueError(f"boot={boot!r} must be a positive integer")
    raw = np.asarray(values, dtype=float).ravel()
    v = np.sort(raw[~np.isnan(raw)])
    if v.size < 2:
        raise ValueError(f"expected_max_curve needs at least 2 trials, got {v.size} (NaN trials are dropped)")
    if not np.isfinite(v).all():
        raise ValueError("trial results must be finite (NaN marks a failed trial and is dropped)")
    n = v.size
    weights = _max_weights(n)
    rng = np.random.default_rng(seed)
    resampled = np.sort(v[rng.integers(0, n, size=(boot, n))], axis=1)
    curves = resampled @ weights.T
    low, high = np.quantile(curves, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return ExpectedMax(k=np.arange(1, n + 1), mean=weights @ v, low=low, high=high, n=n, dropped=int(raw.size - n))


@dataclass(frozen=True)
class RankChange:
    k: int  # budget at which the ranking differs from the one at k - 1
    before: list[str]  # best first, at k - 1
    after: list[str]  # best first, at k


def _ranking(curves: Mapping[str, ExpectedMax], k: int) -> list[str]:
    return sorted(curves, key=lambda name: (-float(curves[name].mean[k - 1]), name))


def ranking_changes(curves: Mapping[str, ExpectedMax]) -> list[RankChange]:
    """Budgets at which the order of optimizers by expected best result changes (best first, ties by name).

    Only the budgets every curve has (k = 1..smallest n) are compared. A change says the verdict "A beats B"
    depends on how many trials one can afford; no change (or fewer than 2 curves) gives an empty list.
    """
    if len(curves) < 2:
        return []
    shared = min(curve.n for curve in curves.values())
    changes = []
    previous = _ranking(curves, 1)
    for k in range(2, shared + 1):
        current = _ranking(curves, k)
        if current != previous:
            changes.append(RankChange(k=k, before=previous, after=current))
        previous = current
    return changes


# ------------------------------------------------------------------------------------------------------ paired tests


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    n: int  # shared seeds
    seeds: list[int]  # the shared seeds, sorted
    mean_diff: float  # mean of acc_a - acc_b over the shared seeds
    low: float  # t-interval of mean_diff at `confidence`
    high: float
    t: float  # paired t statistic (±inf, or 0, when every difference is the same)
    p: float  # two-sided paired t-test
    p_holm: float  # p adjusted by Holm-Bonferroni over all pairs tested
    significant: bool  # p_holm < 1 - confidence


@dataclass(frozen=True)
class PairedComparison:
    pairs: list[PairResult]
    unpaired: list[str]  # one message per pair whose seed sets differ or that was left out
    confidence: float = 0.95


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Holm's step-down procedure controls the family-wise error rate like Bonferroni but rejects more: the i-th
    smallest of m p-values (i from 0) is multiplied by m - i, a running maximum keeps the adjusted values in the
    order of the raw ones, and they are capped at 1. H_i is rejected at level α exactly when p_holm[i] <= α.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def _seed_list(seeds: list[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def _seed_message(a: str, b: str, only_a: list[int], only_b: list[int], shared: int) -> str | None:
    """What a report should say about a pair whose seeds do not match, or None when they match and suffice."""
    parts = [f"{x} has {_seed_list(extra)} that {y} lacks" for x, y, extra in ((a, b, only_a), (b, a, only_b)) if extra]
    if shared >= 2:
        return f"{'; '.join(parts)} (compared on the {shared} shared seeds)" if parts else None
    reason = f"left out: {shared} shared seed{'' if shared == 1 else 's'}, a paired test needs 2"
    return f"{'; '.join(parts)} ({reason})" if parts else f"{a} and {b}: {reason}"


def _accuracies(name: str, per_seed: Mapping[int, float]) -> dict[int, float]:
    """The optimizer's accuracies by seed; NaN (a failed run) counts as a missing seed."""
    kept = {}
    for seed, value in per_seed.items():
        value = float(value)
        if math.isinf(value):
            raise ValueError(f"accuracy of {name!r} for seed {seed!r} is {value}")
        if not math.isnan(value):
            kept[seed] = value
    return kept


def _pair(
    a: str, b: str, acc_a: dict[int, float], acc_b: dict[int, float], seeds: list[int], confidence: float
) -> PairResult:
    """The pair's test on the shared `seeds`, differences that are all the same handled as `paired_tests` says (two
    seeds that happen to differ by the same 0.01 points are no evidence); p_holm and significant wait for the other
    pairs' p-values."""
    x = np.array([acc_a[s] for s in seeds])
    y = np.array([acc_b[s] for s in seeds])
    d = x - y
    mean = float(d.mean())
    if np.ptp(d) == 0:
        t, p = (0.0, 1.0) if mean == 0 else (math.nan, math.nan)
        low = high = mean
    else:
        result = scipy_stats.ttest_rel(x, y)
        t, p = float(result.statistic), float(result.pvalue)
        half = float(scipy_stats.t.ppf((1 + confidence) / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
        low, high = mean - half, mean + half
    return PairResult(a, b, len(seeds), seeds, mean, low, high, t, p, p_holm=math.nan, significant=False)


def paired_tests(accuracies: Mapping[str, Mapping[int, float]], confidence: float = 0.95) -> PairedComparison:
    """Paired t-tests of every pair of optimizers (a before b in the given order) on the seeds both ran.

    Pairing by seed removes what the seed does to both (initialisation, data order), so smaller differences show
    than with two independent samples. For each pair: the mean of acc_a - acc_b, its Student t-interval at
    `confidence`, the two-sided p-value of scipy's `ttest_rel`, and that p-value adjusted by Holm-Bonferroni over
    all the pairs tested; `significant` is p_holm < 1 - confidence. A NaN accuracy (failed run) counts as a missing
    seed. Pairs whose seed sets differ get a message in `unpaired` and are tested on the shared seeds, or left out
    when fewer than 2 are shared. Differences that are all the same (zero variance) give no spread to test against:
    such a pair gets p = 1.0 (t = 0) when they are 0; otherwise it is untestable (t, p and p_holm NaN, never
    significant, a message in `unpaired`) and left out of Holm's family. Its interval is the point (mean, mean).
    """
    confidence = _check_confidence(confidence)
    kept = {name: _accuracies(name, per_seed) for name, per_seed in accuracies.items()}
    tested, unpaired = [], []
    for a, b in combinations(kept, 2):
        shared = sorted(kept[a].keys() & kept[b].keys())
        only_a, only_b = sorted(kept[a].keys() - kept[b].keys()), sorted(kept[b].keys() - kept[a].keys())
        message = _seed_message(a, b, only_a, only_b, len(shared))
        if message:
            unpaired.append(message)
        if len(shared) >= 2:
            tested.append(_pair(a, b, kept[a], kept[b], shared, confidence))
            if math.isnan(tested[-1].p):
                unpaired.append(
                    f"{a} and {b}: every shared seed differs by {tested[-1].mean_diff:+g}, no spread to test"
                )
    testable = [i for i, pair in enumerate(tested) if not math.isnan(pair.p)]
    adjusted = dict(zip(testable, holm([tested[i].p for i in testable])))
    pairs = [
        replace(pair, p_holm=float(q), significant=bool(q < 1 - confidence))
        if (q := adjusted.get(i)) is not None
        else pair
        for i, pair in enumerate(tested)
    ]
    return PairedComparison(pairs=pairs, unpaired=unpaired, confidence=confidence)
