"""The report's Analyses section: each entry of `analyses` in conf/report.yaml runs one registered analysis on the
seed the report shows for a run, and shows its figures and the key numbers of its summary.json; skipped and failed
entries say why (and what to run) instead of disappearing. Results come from the analysis's own summary.json cache
(checkpoint digest + settings), so a re-build without new runs recomputes nothing; one entry's error is recorded,
never allowed to lose the report."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cnnlab.analysis import ANALYSES, AnalysisResult
from cnnlab.analysis.results import merge_options, option_overrides
from cnnlab.checks import one_of
from cnnlab.config import to_plain
from cnnlab.errors import ConfigError
from cnnlab.reporting.collect import Run
from cnnlab.reporting.figures import copy_if_changed
from cnnlab.reporting.markdown import md_image, md_table
from cnnlab.reporting.sections import ReportContext, Section, one_line

ENTRY_KEYS = ("analysis", "run", "options")
FIGURE_DIR = Path("figures") / "analyses"


@dataclass(frozen=True)
class AnalysisEntry:
    """One configured analysis: which registered analysis, on which of the report's runs, with which options."""

    index: int
    analysis: str
    run: str
    options: dict[str, Any]
    settings: dict[str, Any]  # the options merged with the analysis's defaults, for titles

    def command(self, run_dir: Path) -> str:
        """The stand-alone command that computes (or shows the cached) same result."""
        return shlex.join([f"cnnlab-{self.analysis}", f"run={run_dir}", *option_overrides(self.analysis, self.options)])


class AnalysisStatus(StrEnum):
    """What became of an entry: done (result and its figures, relative to the report directory), skipped (no
    finished run; the message is the command that trains it) or failed (the message is the one-line error).
    Members equal their strings, so JSON and text show the plain word."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class AnalysisOutcome:
    """What became of an entry (see AnalysisStatus)."""

    entry: AnalysisEntry
    status: AnalysisStatus
    run: Run | None = None
    result: AnalysisResult | None = None
    figures: tuple[Path, ...] = ()
    message: str = ""


def parse_entries(entries: Sequence[Any], runs: Mapping[str, Any]) -> list[AnalysisEntry]:
    """Validate the configured entries before anything is written: known analysis, defined run, known option names."""
    out = []
    for i, entry in enumerate(entries):
        where = f"analyses[{i}]"
        if (
            not isinstance(entry, Mapping)
            or set(entry) - set(ENTRY_KEYS)
            or "analysis" not in entry
            or "run" not in entry
        ):
            raise ConfigError(f"{where}={entry!r} must be a mapping with keys analysis, run and optionally options")
        name, run, options = entry["analysis"], entry["run"], entry.get("options") or {}
        if name not in ANALYSES:
            raise ConfigError(f"{where}.analysis={name!r} is unknown; choose one of: {', '.join(ANALYSES)}")
        if run not in runs:
            raise ConfigError(f"{where}.run={run!r} is not a run of `runs`; defined: {', '.join(runs)}")
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}.options={options!r} must be a mapping of {name}'s options")
        try:
            settings = merge_options(name, options)
        except ConfigError as err:
            raise ConfigError(f"{where}.options: {err}") from None
        out.append(AnalysisEntry(i, name, run, dict(options), settings))
    return out


def run_analyses(entries: Sequence[AnalysisEntry], context: ReportContext) -> list[AnalysisOutcome]:
    """Run every entry on its run's shown seed and copy its figures under `figures/analyses/` of the report."""
    outcomes = []
    device, data_dir = context.settings.analysis_device, Path(context.settings.paths.data_dir)
    for entry in entries:
        run = context.shown.get(entry.run)
        if run is None:
            command = context.expected[entry.run].command(context.seeds[:1])
            outcomes.append(AnalysisOutcome(entry, AnalysisStatus.SKIPPED, message=command))
            continue
        try:
            result = ANALYSES[entry.analysis](run.run_dir, entry.options, device, data_dir)
            setting = result.out_dir.relative_to(run.run_dir / "analysis")
            dest = context.report_dir / FIGURE_DIR / f"{entry.run}-seed{run.seed}" / setting
            figures = tuple(copy_if_changed(f, dest / f.name).relative_to(context.report_dir) for f in result.figures)
        except Exception as err:  # noqa: BLE001 (one entry's failure is reported, the rest of the report still written)
            outcomes.append(AnalysisOutcome(entry, AnalysisStatus.FAILED, run, message=one_line(err)))
            continue
        outcomes.append(AnalysisOutcome(entry, AnalysisStatus.DONE, run, result, figures))
    return outcomes


def title(entry: AnalysisEntry) -> str:
    s = entry.settings
    if entry.analysis == "filters":
        channel = "" if s["layer"] == "conv1" else f", input channel {s['in_channel']}"
        return f"Filters of {'conv1 and conv2' if s['layer'] == 'both' else s['layer']}{channel}"
    if entry.analysis == "activations":
        return f"Activation maps of {s['layer']}, test image {s['image']}"
    if entry.analysis == "occlusion":
        sizes = ", ".join(map(str, s["sizes"]))
        return f"Occlusion, patch sizes {sizes} (stride {s['stride']}, first {s['images']} test images)"
    return f"{s['mode'].capitalize()} adversarial images ({s['adversarial_preset']['name']} preset)"


def _filters(summary: Mapping[str, Any]) -> list[str]:
    shapes = [f"{name} weights {'x'.join(map(str, shape))}" for name, shape in summary["weight_shapes"].items()]
    return [f"Kernels drawn on one symmetric colour scale per figure: {'; '.join(shapes)}.", ""]


def _activations(summary: Mapping[str, Any]) -> list[str]:
    shape = "x".join(map(str, summary["map_shape"]))
    return [
        f"Test image {summary['image']} (actual {summary['label']}) is predicted {summary['predicted']} "
        f"({summary['confidence']:.1%}); {summary['layer']} output {shape}, before batch norm and ReLU.",
        "",
    ]


def _occlusion(summary: Mapping[str, Any]) -> list[str]:
    sizes = list(summary["map_shapes"])
    rows = [
        [
            row["index"],
            row["actual"],
            row["predicted"],
            f"{row['unoccluded_probability']:.4f}",
            *(f"{row['min_probability'][k]:.4f}" for k in sizes),
        ]
        for row in summary["images"]
    ]
    headers = [
        "test image",
        "actual",
        "predicted",
        "p(actual), unoccluded",
        *(f"lowest p, {k[1:]}x{k[1:]}" for k in sizes),
    ]
    return [
        "Probability of the true class without a patch, and the lowest it falls to with each patch size:",
        "",
        *md_table(headers, rows),
    ]


def _untargeted(summary: Mapping[str, Any]) -> list[str]:
    rows = [
        [r["target"], r["predicted"], f"{r['confidence']:.1%}", f"{r['final_logit']:.2f}"] for r in summary["table"]
    ]
    hits = sum(r["predicted"] == r["target"] for r in summary["table"])
    return [
        f"{hits} of {len(rows)} images are classified as their target; mean MSE to the first test image of the "
        f"target class {summary['mean_mse_to_source']:.4f} (pixels in [0, 1]).",
        "",
        *md_table(["target", "predicted", "confidence", "final target logit"], rows),
    ]


def _targeted(summary: Mapping[str, Any]) -> list[str]:
    table = summary["table"]
    classes = list(dict.fromkeys(r["source"] for r in table))
    cell = {(r["source"], r["target"]): r for r in table}

    def show(s: str, t: str) -> str:
        if s == t:
            return "—"
        r = cell[s, t]
        text = f"{r['predicted']} ({r['confidence']:.0%})"
        return text if r["predicted"] == t else f"**{text}**"

    rows = [[s, *(show(s, t) for t in classes)] for s in classes]
    return [
        f"Success rate {summary['success_rate']:.1%} ({round(summary['success_rate'] * len(table))} of "
        f"{len(table)} pairs classified as their target); mean MSE to the source image "
        f"{summary['mean_mse_to_source']:.4f} (pixels in [0, 1]). Prediction (confidence) per pair, misses in bold:",
        "",
        *md_table(["looks like \\ target", *classes], rows),
    ]


def _adversarial(summary: Mapping[str, Any]) -> list[str]:
    return (_targeted if summary["settings"]["mode"] == "targeted" else _untargeted)(summary)


KEY_NUMBERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "filters": _filters,
    "activations": _activations,
    "occlusion": _occlusion,
    "adversarial": _adversarial,
}


def check_analyses(settings: DictConfig) -> None:
    """The section's settings and entries, before anything is computed or written."""
    _entries(settings)


def _entries(cfg: DictConfig) -> list[AnalysisEntry] | None:
    """The configured entries; None when the section is turned off (`analyses_enabled=false`)."""
    if not isinstance(cfg.analyses_enabled, bool):
        raise ConfigError(f"analyses_enabled={cfg.analyses_enabled!r} must be true or false")
    one_of("analysis_device", cfg.analysis_device, ("auto", "cpu", "cuda"))
    return parse_entries(to_plain(cfg.analyses) or [], to_plain(cfg.runs)) if cfg.analyses_enabled else None


def analyses(context: ReportContext) -> Section | None:
    """Per entry a heading, its figures and key numbers; failed entries make the section (and cnnlab-report) fail
    after the rest of the report is written."""
    entries = _entries(context.settings)
    if not entries:
        return None
    outcomes = run_analyses(entries, context)
    counts = Counter(o.status for o in outcomes)
    done, skipped, failed = counts[AnalysisStatus.DONE], counts[AnalysisStatus.SKIPPED], counts[AnalysisStatus.FAILED]
    lines = [
        f"{done} of {len(outcomes)} analyses shown, {skipped} skipped (run missing), "
        f"{failed} failed. Each uses the seed shown above for its run; its files and `summary.json` are in "
        "the run's `analysis/` folder, and the command under each heading repeats it.",
        "",
    ]
    for o in outcomes:
        lines += _entry_lines(o, context.labels[o.entry.run])
    summary = [f"analyses: {done} shown, {skipped} skipped (run missing), {failed} failed"]
    summary += [
        f"  failed: {o.entry.analysis} on {o.entry.run}: {o.message}"
        for o in outcomes
        if o.status == AnalysisStatus.FAILED
    ]
    error = f"{failed} of {len(outcomes)} analyses failed" if failed else ""
    return Section("Analyses", "analyses", "\n".join(lines), failed=bool(failed), error=error, summary=summary)


def _entry_lines(o: AnalysisOutcome, label: str) -> list[str]:
    heading = f"### {title(o.entry)}: {label}" + (f", seed {o.run.seed}" if o.run else "")
    if o.status == AnalysisStatus.SKIPPED:
        return [
            heading,
            "",
            f"Skipped: no finished run of {label}. Train it with `{o.message}`, then re-run the report.",
            "",
        ]
    lines = [heading, "", f"`{o.entry.command(o.run.run_dir)}`", ""]
    if o.status == AnalysisStatus.FAILED:
        return lines + [f"**Failed:** {o.message}", ""]
    summary = o.result.summary
    lines += [f"Computed {summary['created_at']} in {summary['compute_time_s']:.1f} s.", ""]
    lines += KEY_NUMBERS[o.entry.analysis](summary)
    for path in o.figures:
        lines += md_image(path, f"{title(o.entry)}, {label}: {path.name}")
    return lines
