"""cnnlab.comparison.stats against computations written another way: binomial sums by hand, brute-force enumeration
of draws, direct loops, Monte-Carlo simulation, scipy's own tests and published worked examples."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cnnlab.comparison.stats import (
    ExpectedMax,
    default_taus,
    expected_max_curve,
    holm,
    median_interval,
    paired_tests,
    performance_profile,
    ranking_changes,
)

INF = math.inf

# ---------------------------------------------------------------------------------------------------- median interval


def coverage_by_hand(n: int, j: int) -> float:
    """P(j <= B <= n - j) for B ~ Binomial(n, 1/2), summed term by term."""
    return sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2**n


@pytest.mark.parametrize("n", [2, 3, 5, 6, 7, 10, 11, 20, 31, 50])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_median_interval_is_the_narrowest_covering_pair(n: int, confidence: float) -> None:
    values = [float(v) for v in np.random.default_rng(n).permutation(np.arange(10, 10 + n) * 3.0)]
    result = median_interval(values, confidence)
    x = sorted(values)
    # every j whose coverage reaches the confidence, found by trying them all
    covering = [j for j in range(1, n // 2 + 1) if coverage_by_hand(n, j) >= confidence]
    j = max(covering) if covering else 1
    assert result.rank == j
    assert (result.low, result.high) == (x[j - 1], x[n - j])
    assert result.coverage == pytest.approx(coverage_by_hand(n, j), abs=1e-12)
    assert result.median == statistics.median(values)
    assert (result.n, result.reached) == (n, n)


@pytest.mark.parametrize(
    ("n", "j", "coverage"), [(6, 1, 0.96875), (10, 2, 0.97852), (20, 6, 0.95861), (30, 10, 0.95723)]
)
def test_median_interval_matches_the_published_table(n: int, j: int, coverage: float) -> None:
    """Worked by hand: coverage = 1 - 2 * sum_{i < j} C(n, i) / 2^n. n = 10: 1 - 2 * (1 + 10) / 1024 = 0.97852,
    while j = 3 gives 1 - 2 * 56 / 1024 = 0.891; n = 20: 1 - 2 * 21700 / 2^20 = 0.95861, while j = 7 gives 0.885;
    n = 30: 1 - 2 * 22964087 / 2^30 = 0.95723, while j = 11 gives 0.901."""
    result = median_interval(list(range(1, n + 1)))
    assert (result.rank, result.low, result.high) == (j, j, n + 1 - j)
    assert result.coverage == pytest.approx(coverage, abs=1e-5)


def test_median_interval_coverage_by_simulation() -> None:
    """The stated coverage is what repeated sampling from a skewed distribution gives."""
    rng = np.random.default_rng(1)
    n, trials, true_median = 12, 20000, math.log(2)
    samples = np.sort(rng.exponential(size=(trials, n)), axis=1)
    result = median_interval(list(samples[0]))
    j = result.rank
    hits = (samples[:, j - 1] <= true_median) & (true_median <= samples[:, n - j])
    assert hits.mean() == pytest.approx(result.coverage, abs=0.01)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_median_interval_falls_back_to_min_max_with_few_seeds(n: int) -> None:
    result = median_interval([5.0 * i for i in range(n, 0, -1)])
    assert (result.low, result.high, result.rank) == (5.0, 5.0 * n, 1)
    assert result.coverage == pytest.approx(1 - 2 * 0.5**n)
    assert result.coverage < 0.95


def test_median_interval_of_one_seed() -> None:
    result = median_interval([7.0])
    assert (result.n, result.median, result.low, result.high, result.coverage, result.reached) == (1, 7, 7, 7, 0, 1)
    never = median_interval([INF])
    assert (never.median, never.low, never.high, never.reached) == (INF, INF, INF, 0)


def test_median_interval_counts_seeds_that_never_reached() -> None:
    # 3 of 7 never reached: the median is the 4th smallest, still finite, and the upper end is inf
    result = median_interval([3.0, INF, 1.0, INF, 2.0, INF, 4.0], confidence=0.9)
    assert (result.n, result.reached, result.median) == (7, 4, 4.0)
    assert result.high == INF
    # 4 of 7 never reached: more than half, the median is inf
    assert median_interval([1.0, INF, 2.0, INF, INF, 3.0, INF]).median == INF
    # exactly half of an even number: the mean of the middle pair is inf too
    assert median_interval([1.0, 2.0, INF, INF]).median == INF
    assert median_interval([1.0, 2.0, 3.0, INF]).median == 2.5


@pytest.mark.parametrize(
    ("values", "confidence", "match"),
    [
        ([], 0.95, "at least one"),
        ([1.0, math.nan], 0.95, "NaN"),
        ([1.0, -INF], 0.95, "NaN or -inf"),
        ([1.0], 1.0, "confidence"),
    ],
)
def test_median_interval_rejects(values: list[float], confidence: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        median_interval(values, confidence)


# ------------------------------------------------------------------------------------------------ performance profile


def profile_by_loop(times: dict[str, dict[str, float]], taus: list[float]) -> dict[str, list[float]]:
    names = list(next(iter(times.values())))
    rho: dict[str, list[float]] = {name: [] for name in names}
    for tau in taus:
        for name in names:
            count = 0
            for row in times.values():
                best = min(row.values())
                if best < INF and row[name] / best <= tau:
                    count += 1
            rho[name].append(count / len(times))
    return rho


def test_performance_profile_matches_a_direct_loop() -> None:
    rng = np.random.default_rng(3)
    names = ["sgd", "adam", "adamw", "lion"]
    times = {}
    for w in range(9):
        row = {name: float(rng.uniform(100, 400)) for name in names}
        if w % 3 == 0:
            row[names[w % 4]] = INF
        times[f"w{w}"] = row
    times["unsolved"] = dict.fromkeys(names, INF)
    times["tie"] = dict.fromkeys(names, 50.0)
    taus = [0.5, 1.0, 1.1, 1.5, 2.0, 3.0, 4.0, 100.0]
    profile = performance_profile(times, taus)
    expected = profile_by_loop(times, taus)
    assert profile.optimizers == names
    assert profile.workloads == list(times)
    np.testing.assert_array_equal(profile.taus, taus)
    for name in names:
        np.testing.assert_allclose(profile.rho[name], expected[name])
    assert profile.ratios["unsolved"] == dict.fromkeys(names, INF)
    assert profile.ratios["tie"] == dict.fromkeys(names, 1.0)
    assert profile.ratios["w0"]["sgd"] == INF


def test_performance_profile_small_example_by_hand() -> None:
    times = {"mnist": {"a": 10.0, "b": 20.0}, "cifar": {"a": 30.0, "b": 15.0}, "imagenet": {"a": INF, "b": 40.0}}
    profile = performance_profile(times, [1.0, 1.99, 2.0, 1e9])
    assert profile.ratios == {
        "mnist": {"a": 1.0, "b": 2.0},
        "cifar": {"a": 2.0, "b": 1.0},
        "imagenet": {"a": INF, "b": 1.0},
    }
    np.testing.assert_allclose(profile.rho["a"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(profile.rho["b"], [2 / 3, 2 / 3, 1.0, 1.0])


def test_performance_profile_names_the_missing_optimizer() -> None:
    with pytest.raises(ValueError, match="'cifar'.*'adam'"):
        performance_profile({"mnist": {"sgd": 1.0, "adam": 2.0}, "cifar": {"sgd": 1.0}}, [1.0])
    with pytest.raises(ValueError, match="'mnist'.*'lion'"):
        performance_profile({"mnist": {"sgd": 1.0}, "cifar": {"sgd": 1.0, "lion": 2.0}}, [1.0])


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ({}, "at least one workload"),
        ({"w": {}}, "at least one optimizer"),
        ({"w": {"a": math.nan}}, "> 0"),
        ({"w": {"a": 0.0}}, "> 0"),
    ],
)
def test_performance_profile_rejects(times: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        performance_profile(times, [1.0])


def test_default_taus() -> None:
    taus = default_taus(8.0, points=4)
    np.testing.assert_allclose(taus, [1.0, 2.0, 4.0, 8.0])
    many = default_taus(50.0)
    assert many.size == 200 and many[0] == 1.0 and many[-1] == pytest.approx(50.0)
    np.testing.assert_allclose(np.diff(np.log(many)), math.log(50.0) / 199)
    with pytest.raises(ValueError, match=r"τ range \[1, tau_max=0.5\] is empty"):
        default_taus(0.5)
    with pytest.raises(ValueError, match="points"):
        default_taus(4.0, points=1)


# ------------------------------------------------------------------------------------------------- expected maximum


def expected_max_by_enumeration(values: list[float], k: int) -> float:
    """Mean of max over every one of the n^k equally likely ordered draws with replacement."""
    draws = list(itertools.product(values, repeat=k))
    return sum(max(draw) for draw in draws) / len(draws)


@pytest.mark.parametrize("values", [[0.91, 0.95, 0.93, 0.97], [0.5, 0.5, 0.7, 0.2, 0.9], [3.0, 1.0]])
def test_expected_max_matches_enumeration(values: list[float]) -> None:
    curve = expected_max_curve(values, boot=10)
    n = len(values)
    np.testing.assert_array_equal(curve.k, np.arange(1, n + 1))
    expected = [expected_max_by_enumeration(values, k) for k in range(1, n + 1)]
    np.testing.assert_allclose(curve.mean, expected, rtol=1e-12)
    assert curve.mean[0] == pytest.approx(statistics.fmean(values))


def test_expected_max_matches_simulation_and_drops_failed_trials() -> None:
    rng = np.random.default_rng(5)
    values = list(rng.uniform(0.8, 0.99, size=9))
    curve = expected_max_curve([*values, math.nan, math.nan], boot=50)
    assert (curve.n, curve.dropped) == (9, 2)
    draws = rng.choice(values, size=(40000, 9))
    simulated = np.maximum.accumulate(draws, axis=1).mean(axis=0)  # best of the first k draws, k = 1..9
    np.testing.assert_allclose(curve.mean, simulated, atol=2e-3)
    assert (np.diff(curve.mean) >= 0).all() and curve.mean[-1] <= max(values)


def test_expected_max_band_is_the_bootstrap_of_the_mean_at_k1() -> None:
    """At k = 1 the curve is the sample mean, whose bootstrap distribution is close to normal with standard
    deviation sd * sqrt((n-1)/n) / sqrt(n); the percentile band should match mean ± z * that."""
    values = list(np.random.default_rng(7).normal(0.9, 0.02, size=60))
    curve = expected_max_curve(values, boot=4000, seed=11, confidence=0.9)
    sd = statistics.pstdev(values) / math.sqrt(len(values))
    z = scipy_stats.norm.ppf(0.95)
    assert curve.low[0] == pytest.approx(statistics.fmean(values) - z * sd, abs=0.2 * sd)
    assert curve.high[0] == pytest.approx(statistics.fmean(values) + z * sd, abs=0.2 * sd)
    assert (curve.low <= curve.mean + 1e-12).all() and (curve.mean <= curve.high + 1e-12).all()


def test_expected_max_band_is_reproducible_and_collapses_without_spread() -> None:
    values = [0.9, 0.92, 0.95, 0.91, 0.97]
    first, again = expected_max_curve(values, seed=3, boot=200), expected_max_curve(values, seed=3, boot=200)
    np.testing.assert_array_equal(first.low, again.low)
    np.testing.assert_array_equal(first.high, again.high)
    assert not np.array_equal(first.low, expected_max_curve(values, seed=4, boot=200).low)
    flat = expected_max_curve([0.5, 0.5, 0.5], boot=50)
    np.testing.assert_allclose([flat.mean, flat.low, flat.high], 0.5)


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([0.9], {}, "at least 2 trials"),
        ([0.9, math.nan], {}, "at least 2 trials"),
        ([0.9, INF], {}, "finite"),
        ([0.9, 0.8], {"boot": 0}, "boot"),
        ([0.9, 0.8], {"confidence": 0.0}, "confidence"),
    ],
)
def test_expected_max_rejects(values: list[float], kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expected_max_curve(values, **kwargs)


def curve_of(means: list[float]) -> ExpectedMax:
    m = np.array(means)
    return ExpectedMax(k=np.arange(1, m.size + 1), mean=m, low=m, high=m, n=m.size)


def test_ranking_changes_follow_a_direct_comparison() -> None:
    curves = {
        "sgd": curve_of([0.80, 0.85, 0.90, 0.93, 0.95]),
        "adam": curve_of([0.88, 0.89, 0.90, 0.91]),  # shorter: only k = 1..4 are compared
        "lion": curve_of([0.70, 0.86, 0.87, 0.88, 0.99]),
    }
    changes = ranking_changes(curves)
    # k=1: adam sgd lion; k=2: adam lion sgd; k=3: adam and sgd tie at 0.90, by name adam first; k=4: sgd adam lion
    assert [(c.k, c.before, c.after) for c in changes] == [
        (2, ["adam", "sgd", "lion"], ["adam", "lion", "sgd"]),
        (3, ["adam", "lion", "sgd"], ["adam", "sgd", "lion"]),
        (4, ["adam", "sgd", "lion"], ["sgd", "adam", "lion"]),
    ]


def test_ranking_changes_on_real_curves_against_pairwise_crossings() -> None:
    """With two optimizers the ranking changes exactly where the sign of the difference of the curves flips."""
    steady = expected_max_curve([0.90, 0.905, 0.91, 0.915, 0.92, 0.925], boot=10)
    lucky = expected_max_curve([0.5, 0.6, 0.7, 0.8, 0.9, 0.99], boot=10)
    changes = ranking_changes({"steady": steady, "lucky": lucky})
    ahead = steady.mean > lucky.mean
    flips = [k + 1 for k in range(1, 6) if ahead[k] != ahead[k - 1]]
    assert flips and [c.k for c in changes] == flips
    assert changes[0].before == ["steady", "lucky"] and changes[0].after == ["lucky", "steady"]


def test_ranking_changes_none() -> None:
    assert ranking_changes({"only": curve_of([0.1, 0.2])}) == []
    assert ranking_changes({}) == []
    assert ranking_changes({"a": curve_of([0.5, 0.6]), "b": curve_of([0.4, 0.5])}) == []


# ------------------------------------------------------------------------------------------------------ paired tests


def test_holm_matches_the_worked_example() -> None:
    """The Holm-Bonferroni example on Wikipedia: p = 0.01, 0.04, 0.03, 0.005 at α = 0.05 rejects H1 and H4 only."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted <= 0.05) == [True, False, False, True]


def holm_rejections(p: list[float], alpha: float) -> set[int]:
    """Holm's step-down procedure as defined: walk the p-values from the smallest, reject while the k-th smallest
    (k from 1) is <= α / (m - k + 1), stop at the first that is not."""
    m = len(p)
    rejected: set[int] = set()
    for k, i in enumerate(sorted(range(m), key=lambda i: p[i]), start=1):
        if p[i] > alpha / (m - k + 1):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_values_reproduce_the_procedure_at_every_level() -> None:
    rng = np.random.default_rng(9)
    for m in (1, 2, 3, 6):
        p = [float(v) for v in rng.uniform(0, 0.2, size=m)]
        p[-1] = p[0]  # a tie
        adjusted = holm(p)
        for alpha in np.linspace(0.0005, 0.5, 400):
            assert {i for i in range(m) if adjusted[i] <= alpha} == holm_rejections(p, float(alpha)), (p, alpha)
    assert holm([]).size == 0
    np.testing.assert_array_equal(holm([0.5, 0.9]), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def t_test_by_hand(x: list[float], y: list[float], confidence: float) -> tuple[float, float, float, float, float]:
    d = [a - b for a, b in zip(x, y)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    p = 2 * scipy_stats.t.sf(abs(t), n - 1)
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return mean, t, p, mean - half, mean + half


def test_paired_tests_match_scipy_and_hand_intervals() -> None:
    rng = np.random.default_rng(13)
    base = rng.normal(0.97, 0.004, size=8)
    accuracies = {
        "sgd": {seed: float(v) for seed, v in enumerate(base)},
        "adam": {seed: float(v + 0.003 + rng.normal(0, 0.001)) for seed, v in enumerate(base)},
        "lion": {seed: float(v + rng.normal(0, 0.002)) for seed, v in enumerate(base)},
    }
    result = paired_tests(accuracies, confidence=0.9)
    assert [(r.a, r.b) for r in result.pairs] == [("sgd", "adam"), ("sgd", "lion"), ("adam", "lion")]
    assert result.unpaired == []
    raw = []
    for r in result.pairs:
        x, y = [accuracies[r.a][s] for s in range(8)], [accuracies[r.b][s] for s in range(8)]
        mean, t, p, low, high = t_test_by_hand(x, y, 0.9)
        assert (r.n, r.seeds) == (8, list(range(8)))
        assert (r.mean_diff, r.t, r.p, r.low, r.high) == pytest.approx((mean, t, p, low, high), rel=1e-9)
        scipy_result = scipy_stats.ttest_rel(x, y)
        assert r.p == pytest.approx(scipy_result.pvalue, rel=1e-12)
        assert (r.low, r.high) == pytest.approx(tuple(scipy_result.confidence_interval(0.9)), rel=1e-9)
        raw.append(p)
    m = len(raw)
    order = sorted(range(m), key=lambda i: raw[i])
    for rank, i in enumerate(order):  # Holm by hand: the largest (m - j) * p over those ranked at or before i
        expected = min(1.0, max((m - j) * raw[order[j]] for j in range(rank + 1)))
        assert result.pairs[i].p_holm == pytest.approx(expected, rel=1e-12)
        assert result.pairs[i].significant == (expected < 0.1)
    assert result.pairs[0].significant and result.pairs[0].mean_diff < 0  # adam's +0.003 shows


def test_paired_tests_on_differing_seed_sets() -> None:
    accuracies = {
        "sgd": {0: 0.90, 1: 0.91, 2: 0.92},
        "adam": {0: 0.93, 1: 0.93, 2: 0.96, 3: 0.90, 4: 0.91},
        "lion": {4: 0.5, 5: 0.6, 0: math.nan},  # the failed seed 0 counts as missing
    }
    result = paired_tests(accuracies)
    assert result.unpaired == [
        "adam has seeds 3, 4 that sgd lacks (compared on the 3 shared seeds)",
        "sgd has seeds 0, 1, 2 that lion lacks; lion has seeds 4, 5 that sgd lacks (left out: 0 shared seeds, a paired "
        "test needs 2)",
        "adam has seeds 0, 1, 2, 3 that lion lacks; lion has seed 5 that adam lacks (left out: 1 shared seed, a paired "
        "test needs 2)",
    ]
    [pair] = result.pairs
    assert (pair.a, pair.b, pair.n, pair.seeds) == ("sgd", "adam", 3, [0, 1, 2])
    assert pair.p == pytest.approx(scipy_stats.ttest_rel([0.90, 0.91, 0.92], [0.93, 0.93, 0.96]).pvalue)
    assert pair.p_holm == pytest.approx(pair.p)  # the only pair tested: nothing to adjust for


def test_paired_tests_with_identical_differences() -> None:
    shifted = paired_tests({"a": {1: 0.5, 2: 0.75, 3: 0.25}, "b": {1: 0.25, 2: 0.5, 3: 0.0}, "c": {1: 0, 2: 1, 3: 0}})
    pair, *others = shifted.pairs  # a - b: untestable, and not part of the family Holm adjusts over
    assert (pair.mean_diff, pair.low, pair.high) == (0.25, 0.25, 0.25) and not pair.significant
    assert all(math.isnan(v) for v in (pair.t, pair.p, pair.p_holm))
    assert shifted.unpaired == ["a and b: every shared seed differs by +0.25, no spread to test"]
    assert [o.p_holm for o in others] == pytest.approx(list(holm([o.p for o in others])))
    same = paired_tests({"a": {1: 0.9, 2: 0.8}, "b": {1: 0.9, 2: 0.8}})
    [pair] = same.pairs
    assert (pair.mean_diff, pair.low, pair.high, pair.t, pair.p, pair.significant) == (0.0, 0.0, 0.0, 0.0, 1.0, False)


def test_paired_tests_edge_cases() -> None:
    assert paired_tests({"a": {1: 0.9}, "b": {1: 0.8}}).unpaired == [
        "a and b: left out: 1 shared seed, a paired test needs 2"
    ]
    assert paired_tests({"a": {1: 0.9, 2: 0.8}}).pairs == []
    with pytest.raises(ValueError, match="confidence"):
        paired_tests({"a": {1: 0.9}}, confidence=95)
    with pytest.raises(ValueError, match="seed 2"):
        paired_tests({"a": {1: 0.9, 2: INF}, "b": {1: 0.9, 2: 0.8}})
