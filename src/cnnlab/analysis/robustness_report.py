"""The report's "Robustness and attributions" section: robust accuracy against epsilon per configuration over its
seeds, one seed's attribution maps per configuration, and the attribution checks over seeds.

Every finished seed of every configuration is attacked and explained with `conf/report.yaml`'s `robustness.options`
and `attributions.options` (the commands' own defaults otherwise); results are cached in each run's `analysis/`
folder, so a second report computes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig

from cnnlab.analysis import ANALYSES
from cnnlab.analysis.attributions import check_attributions_settings
from cnnlab.analysis.results import AnalysisResult, options_of
from cnnlab.analysis.robustness import check_robustness_settings
from cnnlab.checks import boolean
from cnnlab.config import to_plain
from cnnlab.reporting.figures import cached_figure, copy_if_changed
from cnnlab.reporting.markdown import md_image, md_table
from cnnlab.reporting.sections import ReportContext, Section
from cnnlab.reporting.stats import Summary, summarize

PERCENT = (0.0, 100.0)
CHECKS = {"robustness": check_robustness_settings, "attributions": check_attributions_settings}


def _settings(settings: DictConfig) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(robustness options, attribution options), or None when the section is turned off: by `robustness.enabled`,
    or with every analysis by `analyses_enabled=false` (which promises that nothing is computed)."""
    plain = to_plain(settings)
    robust, attrs = plain.get("robustness") or {}, plain.get("attributions") or {}
    if not boolean("robustness.enabled", robust.get("enabled", True)) or plain.get("analyses_enabled") is False:
        return None
    return robust.get("options") or {}, attrs.get("options") or {}


def check_robustness(settings: DictConfig) -> None:
    """The section's options, checked by the analyses' own checks before anything is computed or written."""
    if (options := _settings(settings)) is None:
        return
    for (name, check), opts in zip(CHECKS.items(), options):
        check(options_of(name, opts)[0])


def _results(context: ReportContext, name: str, options: Mapping[str, Any]) -> dict[str, list[AnalysisResult]]:
    device = context.settings.get("analysis_device", "auto")
    data_dir = Path(context.settings.paths.data_dir)
    return {key: [ANALYSES[name](run, options, device, data_dir) for run in runs] for key, runs in context.runs.items()}


def _cell(s: Summary, spec: str = ".1f") -> str:
    """`mean [low, high]`, or the mean alone for one seed."""
    return f"{s.mean:{spec}}" if s.ci is None else f"{s.mean:{spec}} [{s.ci[0]:{spec}}, {s.ci[1]:{spec}}]"


def _curves(context: ReportContext, robust: Mapping[str, list[AnalysisResult]]) -> tuple[list, list[dict], dict]:
    """Markdown rows, CSV rows and the figure's inputs: per configuration and attack, the accuracy at each epsilon
    summarised over seeds (mean and t-interval cut to 0-100%)."""
    rows, csv, series = [], [], {}
    for key, results in robust.items():
        if not results:
            continue
        first = results[0].summary
        for attack in first["accuracy"]:
            per_eps = [[r.summary["accuracy"][attack][i] for r in results] for i in range(len(first["epsilons"]))]
            summaries = [summarize(v, context.confidence, PERCENT) for v in per_eps]
            rows.append([context.labels[key], attack.upper(), len(results), *map(_cell, summaries)])
            series[(context.labels[key], attack)] = (first["epsilons"], summaries)
            csv += [
                {
                    "configuration": context.labels[key],
                    "attack": attack,
                    "epsilon": eps,
                    "seeds": s.n,
                    "mean": s.mean,
                    "ci_low": s.ci[0] if s.ci else None,
                    "ci_high": s.ci[1] if s.ci else None,
                }
                for eps, s in zip(first["epsilons"], summaries)
            ]
    return rows, csv, series


def _figure(series: Mapping[tuple[str, str], tuple[Sequence[float], Sequence[Summary]]]) -> Figure:
    attacks = sorted({attack for _, attack in series})
    fig = Figure(figsize=(5 * len(attacks), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(attacks), sharey=True))
    for ax, attack in zip(axes, attacks):
        for (label, which), (eps, summaries) in series.items():
            if which != attack:
                continue
            (line,) = ax.plot(eps, [s.mean for s in summaries], marker="o", label=label)
            if all(s.ci for s in summaries):
                ax.fill_between(
                    eps, [s.ci[0] for s in summaries], [s.ci[1] for s in summaries], alpha=0.2, color=line.get_color()
                )
        ax.set(title=attack.upper(), xlabel="epsilon (L-inf, pixel units)", ylim=(0, 100))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[-1].legend(fontsize=8)
    return fig


def _checks(context: ReportContext, attrs: Mapping[str, list[AnalysisResult]]) -> tuple[list, list[dict]]:
    rows, csv = [], []
    for key, results in attrs.items():
        if not results:
            continue
        for method in results[0].summary["checks"]:
            corr = summarize([r.summary["checks"][method]["randomisation_rank_correlation"] for r in results])
            infid = summarize([r.summary["checks"][method]["infidelity"] for r in results])
            rows.append(
                [context.labels[key], method.replace("_", " "), corr.n, _cell(corr, ".3g"), _cell(infid, ".3g")]
            )
            csv.append(
                {
                    "configuration": context.labels[key],
                    "method": method,
                    "seeds": corr.n,
                    "randomisation_rank_correlation": corr.mean,
                    "infidelity": infid.mean,
                }
            )
    return rows, csv


def _attribution_figures(context: ReportContext, attrs: Mapping[str, list[AnalysisResult]]) -> list[str]:
    lines = []
    for key, results in attrs.items():
        if results:
            source = results[0].figures[0]
            dest = copy_if_changed(source, context.figures_dir / f"attributions_{key}.png")
            seed = Path(results[0].summary["checkpoint"]).parent.name
            lines += md_image(dest.relative_to(context.report_dir), f"attributions, {context.labels[key]}, {seed}")
    return lines


def robustness_section(context: ReportContext) -> Section | None:
    """Robust accuracy, attribution maps and their checks for every configuration with finished runs."""
    if (options := _settings(context.settings)) is None:
        return None
    robust = _results(context, "robustness", options[0])
    attrs = _results(context, "attributions", options[1])
    if not any(robust.values()):
        return Section("Robustness and attributions", "robustness", "No finished runs to attack yet.")
    rows, curve_csv, series = _curves(context, robust)
    first = next(r[0].summary for r in robust.values() if r)
    figure = cached_figure(context.figures_dir / "robustness.png", curve_csv, lambda: _figure(series))
    check_rows, check_csv = _checks(context, attrs)
    level = context.level
    lines = [
        f"Test accuracy (%) under attack, mean over seeds with its {level} interval, on the same "
        f"{first['images_attacked']} test images for every run "
        "(`cnnlab-robustness`; epsilon in pixel units, 0 is the clean accuracy).",
        "",
        *md_table(["configuration", "attack", "seeds", *[f"eps {e:g}" for e in first["epsilons"]]], rows),
        *md_image(figure.relative_to(context.report_dir), f"robust accuracy against epsilon, {level} bands"),
        f"Attribution checks (`cnnlab-attributions`), mean over seeds [{level} interval]: the rank correlation "
        "between the trained model's maps and those of the same network with random weights (near 1: the map "
        "ignores what the model learned), and Captum's infidelity (lower is better).",
        "",
        *md_table(["configuration", "method", "seeds", "randomisation rank corr.", "infidelity"], check_rows),
        *_attribution_figures(context, attrs),
    ]
    tables = {"robustness": curve_csv, "attribution_checks": check_csv}
    summary = [f"robustness: {sum(map(len, robust.values()))} runs attacked"]
    return Section("Robustness and attributions", "robustness", "\n".join(lines), tables=tables, summary=summary)
