"""The report's "Optimizer comparison": time to target at step resolution, performance profiles over workloads,
expected best validation accuracy against the tuning budget, and paired tests between optimizers.

Built from whatever runs and studies of `experiment=comparison` exist (`comparison.workloads`); what is missing is
listed with the command that makes it, and a bad `comparison` setting fails this section alone (one line; the rest
of the report is written).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.comparison.figures import budget_figure, profile_figure
from cnnlab.comparison.points import first_reach, validation_points
from cnnlab.comparison.stats import (
    ExpectedMax,
    PairResult,
    Profile,
    default_taus,
    expected_max_curve,
    median_interval,
    paired_tests,
    performance_profile,
    ranking_changes,
)
from cnnlab.comparison.workloads import (
    Cell,
    ComparisonSettings,
    comparison_settings,
    find_cells,
    train_commands,
    tune_command,
)
from cnnlab.errors import ConfigError, first_line
from cnnlab.reporting.collect import Run
from cnnlab.reporting.expected import output_dir_args
from cnnlab.reporting.figures import md_figure
from cnnlab.reporting.markdown import md_table
from cnnlab.reporting.sections import ReportContext, Section
from cnnlab.runs.status import RunStatus

TITLE, ANCHOR = "Optimizer comparison", "optimizer-comparison"
TABLE_NOTES = {
    "comparison_time_to_target": "one row per workload, optimizer and target: seeds that reached it and the median "
    "images seen, epochs and training seconds with the interval of the median (inf: not reached)",
    "comparison_profile": "the performance profiles' ratios: each optimizer's time to target over the best one's, "
    "per workload (inf: not reached)",
    "comparison_budget": "expected best validation accuracy after k tuning trials with its bootstrap band",
    "comparison_paired": "paired t-tests between optimizers on the same seeds, Holm-corrected per workload",
}
PROFILE_TAUS = (1.0, 1.5, 2.0, 4.0)  # the profile's table: rho at these factors (and at tau_max)


@dataclass
class Parts:
    """What the section is made of, filled in by each part in turn."""

    lines: list[str] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)


def optimizer_comparison(context: ReportContext) -> Section | None:
    """The section; None when `comparison.enabled` is false."""
    block = context.settings.get("comparison")
    if block is None or not block.get("enabled", True):
        return None
    try:
        settings = comparison_settings(context.settings)
        where = _where(context)
        cells = find_cells(settings, Path(context.settings.paths.runs_dir), where)
    except ConfigError as err:
        text = first_line(err)
        return Section(TITLE, ANCHOR, f"Not shown: {text}", failed=True, error=text)
    if not any(c.runs or c.study for c in cells):  # nothing of the comparison yet: one line, not 80 missing runs
        text = (
            "No run of `experiment=comparison` yet: `scripts/reproduce.sh comparison` makes them (docs/comparison.md)."
        )
        return Section(TITLE, ANCHOR, text)
    parts = Parts()
    parts.lines += [_protocol(settings), ""]
    _runs_missing(cells, settings, where, parts)
    _time_to_target(cells, settings, context.confidence, parts)
    _profiles(cells, settings, context, parts)
    _budget(cells, settings, context, where, parts)
    _paired(cells, settings, context, parts)
    return Section(
        TITLE,
        ANCHOR,
        "\n".join(parts.lines),
        tables=parts.tables,
        missing=parts.missing,
        summary=parts.summary,
        table_notes=TABLE_NOTES,
    )


def _where(context: ReportContext) -> list[str]:
    """The paths settings a printed command needs to write where this report reads."""
    paths = context.settings.paths
    out = output_dir_args(paths)
    if Path(paths.runs_dir) != Path(paths.output_dir) / "runs":
        out.append(f"paths.runs_dir={paths.runs_dir}")
    return out


def _protocol(settings: ComparisonSettings) -> str:
    targets = "; ".join(f"{d}: {', '.join(f'{t:g}%' for t in ts)}" for d, ts in settings.targets.items())
    optimizers, workloads = ", ".join(settings.optimizers), ", ".join(settings.workloads)
    seeds = ", ".join(map(str, settings.seeds))
    return (
        f"The optimizers ({optimizers}) trained on {len(settings.workloads)} workloads ({workloads}) on the same "
        f"seeds ({seeds}), validated during each epoch (`trainer.eval_every` of `experiment=comparison`). "
        f"Targets (validation accuracy): {targets}. Time to target is the first validation at or above the "
        "target, in images seen (the same on any machine) and in training seconds (evaluation excluded; they "
        "depend on the device). A seed that never reaches a target counts as not reached (∞), not dropped."
    )


def _runs_missing(cells: Sequence[Cell], settings: ComparisonSettings, where: list[str], parts: Parts) -> None:
    """The commands that train every run still missing (finished ones are reused), and the runs that cannot be used."""
    absent = sum(1 for c in cells for s in settings.seeds if s not in c.completed())
    if absent:
        commands = "; ".join(f"`{c}`" for c in train_commands(cells, settings, where))
        parts.missing.append(f"optimizer comparison: {absent} of {len(cells) * len(settings.seeds)} runs: {commands}")
    stale = [
        f"{c.workload}/{c.optimizer} seed {s}"
        for c in cells
        for s, r in c.completed().items()
        if validation_points(r.metrics.get("history", [])) is None
    ]
    if stale:
        parts.missing.append(
            f"optimizer comparison: {len(stale)} runs recorded before steps and images were counted "
            f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}): retrain them with overwrite=true"
        )


# --- time to target --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """When one seed first reached a target: images seen, training seconds and epochs (all inf: never)."""

    images: float
    seconds: float
    epochs: float


def _reaches(runs: Mapping[int, Run], target: float) -> dict[int, Reach]:
    out = {}
    for seed, run in runs.items():
        points = validation_points(run.metrics.get("history", []))
        if points is None:
            continue
        hit = first_reach(points, target)
        out[seed] = Reach(hit.images_seen, hit.train_seconds, hit.epoch) if hit else Reach(math.inf, math.inf, math.inf)
    return out


def _medians(name: str, values: Sequence[float], confidence: float) -> dict[str, float]:
    m = median_interval(values, confidence)
    out = {f"{name}_median": m.median, f"{name}_low": m.low, f"{name}_high": m.high}
    return out if name != "images" else {**out, "interval_coverage": m.coverage}


def _shown(row: Mapping[str, Any], name: str, spec: str) -> str:
    values = [row[f"{name}_{part}"] for part in ("median", "low", "high")]
    shown = [("not reached" if math.isinf(v) else f"{v:{spec}}") for v in values]
    return shown[0] if shown[0] == shown[1] == shown[2] else f"{shown[0]} [{shown[1]}, {shown[2]}]"


def _reach_row(cell: Cell, target: float, hits: Sequence[Reach], confidence: float) -> dict[str, Any]:
    """The CSV's row: medians and interval ends in full (inf: not reached)."""
    return {
        "workload": cell.workload,
        "optimizer": cell.optimizer,
        "target": target,
        "reached": sum(math.isfinite(h.images) for h in hits),
        "seeds": len(hits),
        **_medians("images", [h.images for h in hits], confidence),
        **_medians("epochs", [h.epochs for h in hits], confidence),
        **_medians("seconds", [h.seconds for h in hits], confidence),
    }


def _reach_cells(row: Mapping[str, Any]) -> list[str]:
    return [
        row["workload"],
        row["optimizer"],
        f"{row['target']:g}",
        f"{row['reached']} of {row['seeds']}",
        _shown(row, "images", ",.0f"),
        _shown(row, "epochs", ".2f"),
        _shown(row, "seconds", ".1f"),
    ]


REACH_HEADERS = ["workload", "optimizer", "target %", "reached", "images seen", "epochs", "training s"]


def _devices(cells: Sequence[Cell]) -> str:
    devices = sorted({str(r.metrics.get("device", "?")) for c in cells for r in c.completed().values()})
    return ", ".join(devices) or "—"


def _time_to_target(cells: Sequence[Cell], settings: ComparisonSettings, confidence: float, parts: Parts) -> None:
    rows = []
    for cell in cells:
        for target in settings.targets.get(cell.dataset, []):
            reaches = _reaches(cell.completed(), target)
            if reaches:
                rows.append(_reach_row(cell, target, list(reaches.values()), confidence))
    no_target = sorted({c.dataset for c in cells if c.dataset not in settings.targets})
    if no_target:
        parts.missing.append(f"optimizer comparison: no target for {', '.join(no_target)}: set comparison.targets")
    parts.lines += ["### Time to target", ""]
    if not rows:
        parts.lines += ["No finished run of the comparison with a target for its dataset yet.", ""]
        return
    coverage = min(r["interval_coverage"] for r in rows)
    parts.lines += [
        f"Median over seeds with the distribution-free {confidence:.0%} interval of the median (order statistics; "
        f"with too few seeds for that it is the range, whose coverage is lower: {coverage:.0%} for the fewest seeds "
        f"here). Training seconds on: {_devices(cells)}.",
        "",
        *md_table(REACH_HEADERS, [_reach_cells(r) for r in rows]),
    ]
    parts.tables["comparison_time_to_target"] = rows


# --- performance profiles --------------------------------------------------------------------------------------------


def _profile_times(
    cells: Sequence[Cell], settings: ComparisonSettings, level: int, tuned: bool
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Median images seen to the workload's `level`-th target per workload and optimizer, and why workloads were left
    out (a profile compares every optimizer on the same workloads)."""
    times: dict[str, dict[str, float]] = {}
    left_out = []
    for workload in settings.workloads:
        mine = [c for c in cells if c.workload == workload]
        targets = settings.targets.get(mine[0].dataset, [])
        if level >= len(targets):
            left_out.append(f"{workload} (its dataset has no target {level + 1})")
            continue
        row, lacking = {}, []
        for cell in mine:
            reaches = _reaches(cell.completed(cell.tuned if tuned else None), targets[level])
            if reaches:
                row[cell.optimizer] = median_interval([r.images for r in reaches.values()]).median
            else:
                lacking.append(cell.optimizer)
        if lacking:
            left_out.append(f"{workload} ({'no runs' if not row else 'no runs of ' + ', '.join(lacking)})")
        else:
            times[workload] = row
    return times, left_out


def _profiles(cells: Sequence[Cell], settings: ComparisonSettings, context: ReportContext, parts: Parts) -> None:
    levels = max(len(t) for t in settings.targets.values())
    taus = default_taus(settings.tau_max)
    panels: dict[str, Profile] = {}
    notes = []
    for level in range(levels):
        for kind in ("untuned", "tuned"):
            times, left_out = _profile_times(cells, settings, level, tuned=kind == "tuned")
            if left_out and (kind == "untuned" or times):  # a tuned profile that is absent altogether says nothing
                notes.append(f"{kind}, target {level + 1}: {'; '.join(left_out)}")
            if times:
                panels[f"{kind}, target {level + 1}"] = performance_profile(times, taus)
    parts.lines += ["### Performance profiles", ""]
    if not panels:
        parts.lines += ["No workload has runs of every optimizer yet.", ""]
        return
    inputs = {"tau_max": settings.tau_max, "ratios": {k: p.ratios for k, p in panels.items()}}
    rows = _profile_rows(panels)
    parts.lines += [
        "Dolan and Moré (2002) profiles, as AlgoPerf draws them: on each workload an optimizer's time to target "
        "(median images seen over seeds) divided by the best optimizer's; ρ(τ) is the fraction of workloads on which "
        "it is within a factor τ of the best (ρ(1): how often it is the fastest; ρ at large τ: how often it gets "
        "there at all). Target n is each dataset's n-th target. Tuned: each optimizer at its study's best setting "
        "(shown where studies and their seed runs exist).",
        "",
        *([f"Left out: {'; '.join(notes)}.", ""] if notes else []),
        *md_figure(context, "performance_profiles.png", inputs, lambda: profile_figure(panels), "performance profiles"),
        *md_table(list(rows[0]), [list(r.values()) for r in rows]),
    ]
    parts.tables["comparison_profile"] = _ratio_rows(panels)


def _profile_rows(panels: Mapping[str, Profile]) -> list[dict[str, Any]]:
    rows = []
    for title, profile in panels.items():
        for optimizer in profile.optimizers:
            row: dict[str, Any] = {"profile": title, "optimizer": optimizer, "workloads": len(profile.workloads)}
            for tau in dict.fromkeys([*(t for t in PROFILE_TAUS if t < profile.taus[-1]), float(profile.taus[-1])]):
                fraction = sum(profile.ratios[w][optimizer] <= tau for w in profile.workloads) / len(profile.workloads)
                row[f"ρ({tau:g})"] = f"{fraction:.2f}"
            rows.append(row)
    return rows


def _ratio_rows(panels: Mapping[str, Profile]) -> list[dict[str, Any]]:
    return [
        {"profile": title, "workload": w, "optimizer": o, "ratio": profile.ratios[w][o]}
        for title, profile in panels.items()
        for w in profile.workloads
        for o in profile.optimizers
    ]


# --- expected best accuracy against the tuning budget ---------------------------------------------------------------


def _curves(
    cells: Sequence[Cell], settings: ComparisonSettings, confidence: float, where: list[str], parts: Parts
) -> dict[str, dict[str, ExpectedMax]]:
    curves: dict[str, dict[str, ExpectedMax]] = {}
    absent, thin = [], []
    for cell in cells:
        values = cell.trial_values()
        if cell.study is None:
            absent.append(f"{cell.workload}/{cell.optimizer}")
        elif len(values) < 2:
            thin.append(f"{cell.workload}/{cell.optimizer} ({len(values)})")
        else:
            curves.setdefault(cell.workload, {})[cell.optimizer] = expected_max_curve(values, confidence=confidence)
    if absent:
        parts.missing.append(f"optimizer comparison: {len(absent)} tuning studies: `{tune_command(settings, where)}`")
    if thin:
        parts.missing.append(
            "optimizer comparison: studies with fewer than 2 complete trials, which a budget curve needs: "
            f"{', '.join(thin)} (raise tune.trials: `{tune_command(settings, where)} tune.trials=<n>`)"
        )
    return curves


def _budget(
    cells: Sequence[Cell], settings: ComparisonSettings, context: ReportContext, where: list[str], parts: Parts
) -> None:
    curves = _curves(cells, settings, context.confidence, where, parts)
    parts.lines += ["### Expected best accuracy against the tuning budget", ""]
    if not curves:
        parts.lines += ["No tuning study of the comparison has 2 complete trials yet.", ""]
        return
    samplers = sorted({c.sampler for c in cells if c.study is not None})
    caveat = (
        " TPE chooses each trial from the earlier ones, so its trials are not independent draws and the curves only "
        "approximate its budget; `tune.sampler=random` studies match the formula's assumption."
        if "tpe" in samplers
        else ""
    )
    level = f"{context.confidence:.0%}"
    drawn = {
        w: {o: [c.mean.tolist(), c.low.tolist(), c.high.tolist()] for o, c in per.items()} for w, per in curves.items()
    }
    pruned = sum(c.pruned_trials() for c in cells)
    if pruned:
        caveat += (
            f" {pruned} pruned trials are left out: pruning keeps the trials that were doing well, so these curves "
            "are optimistic; studies with `tune.pruner.name=none` avoid it."
        )
    parts.lines += [
        'Dodge et al. (2019), "Show Your Work": the expected maximum validation accuracy of k trials drawn from each '
        "study's complete trials (the order-statistics formula on their empirical distribution), with a bootstrap "
        f"band ({level}, 1,000 resamples of the trials). Sampler: {', '.join(samplers)}.{caveat}",
        "",
        *md_figure(
            context,
            "budget_curves.png",
            {"level": level, "curves": drawn},
            lambda: budget_figure(curves, level),
            "expected best validation accuracy against trials",
        ),
    ]
    for workload, per in curves.items():
        changes = ranking_changes(per)
        text = "; ".join(f"at k = {c.k}: {' > '.join(c.before)} becomes {' > '.join(c.after)}" for c in changes)
        parts.lines.append(
            f"- {workload}: " + (f"the ranking changes {text}" if changes else "the ranking holds at every budget")
        )
    parts.lines.append("")
    parts.tables["comparison_budget"] = [
        {"workload": w, "optimizer": o, "k": int(k), "expected_best": m, "low": lo, "high": hi, "trials": c.n}
        for w, per in curves.items()
        for o, c in per.items()
        for k, m, lo, hi in zip(c.k, c.mean, c.low, c.high)
    ]


# --- paired tests ----------------------------------------------------------------------------------------------------


def _paired(cells: Sequence[Cell], settings: ComparisonSettings, context: ReportContext, parts: Parts) -> None:
    rows, notes = [], []
    for workload in settings.workloads:
        accuracies = {
            c.optimizer: {s: r.metrics["test"]["accuracy"] for s, r in c.runs.items() if r.status == RunStatus.FINISHED}
            for c in cells
            if c.workload == workload
        }
        accuracies = {o: per for o, per in accuracies.items() if per}
        if len(accuracies) < 2:
            continue
        result = paired_tests(accuracies, context.confidence)
        notes += [f"{workload}: {message}" for message in result.unpaired]
        rows += [_pair_row(workload, pair) for pair in result.pairs]
    parts.lines += ["### Paired comparisons", ""]
    if not rows:
        parts.lines += ["No workload has two optimizers with at least 2 finished seeds in common yet.", ""]
        parts.lines += [f"Not paired: {'; '.join(notes)}.", ""] if notes else []
        return
    alpha = 1 - context.confidence
    parts.lines += [
        "Each pair of optimizers on a workload, compared seed by seed on test accuracy: the mean of the per-seed "
        f"differences (percentage points) with its {context.level} t-interval, the paired t-test, and its p-value "
        f"Holm-corrected over the workload's pairs; ✓ marks a difference significant at {alpha:g} after correction, "
        "n the seeds it took.",
        "",
        *md_table(PAIR_HEADERS, [_pair_cells(r) for r in rows]),
        *([f"Not paired: {'; '.join(notes)}.", ""] if notes else []),
    ]
    parts.tables["comparison_paired"] = rows
    significant = sum(r["significant"] for r in rows)
    parts.summary.append(f"optimizer comparison: {significant} of {len(rows)} paired differences significant")


def _pair_row(workload: str, pair: PairResult) -> dict[str, Any]:
    """The CSV's row: full precision, for anyone who computes on from it."""
    return {
        "workload": workload,
        "a": pair.a,
        "b": pair.b,
        "n": pair.n,
        "seeds": " ".join(map(str, pair.seeds)),
        "mean_difference": pair.mean_diff,
        "low": pair.low,
        "high": pair.high,
        "t": pair.t,
        "p": pair.p,
        "p_holm": pair.p_holm,
        "significant": pair.significant,
    }


def _pair_cells(row: Mapping[str, Any]) -> list[str]:
    return [
        row["workload"],
        f"{row['a']} − {row['b']}",
        str(row["n"]),
        f"{row['mean_difference']:+.2f}",
        f"[{row['low']:+.2f}, {row['high']:+.2f}]",
        "untestable" if math.isnan(row["p"]) else f"{row['p']:.3g}",
        "—" if math.isnan(row["p_holm"]) else f"{row['p_holm']:.3g}",
        "✓" if row["significant"] else "",
    ]


PAIR_HEADERS = ["workload", "pair", "n", "mean difference", "interval", "p", "Holm p", "significant"]
