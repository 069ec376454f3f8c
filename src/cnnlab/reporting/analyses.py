"""The report's analyses: each entry of `analyses` in conf/report.yaml runs one registered analysis on the seed the
report shows for a run. Results come from the analysis's own summary.json cache (checkpoint digest + settings), so a
re-build without new runs recomputes nothing; one entry's error is recorded, never allowed to lose the report."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cnnlab.analysis import ANALYSES, AnalysisResult
from cnnlab.analysis.results import merge_options, option_overrides
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.reporting.collect import Run
from cnnlab.reporting.expected import Expected
from cnnlab.reporting.figures import copy_if_changed

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


class AnalysisStatus(str, Enum):
    """What became of an entry: done (result and its figures, relative to the report directory), skipped (no
    finished run; the message is the command that trains it) or failed (the message is the one-line error).
    Members equal their strings, so JSON and text show the plain word."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AnalysisOutcome:
    """What became of an entry (see AnalysisStatus)."""

    entry: AnalysisEntry
    status: AnalysisStatus
    run: Run | None = None
    result: AnalysisResult | None = None
    figures: tuple[Path, ...] = ()
    message: str = ""


def tally(outcomes: Iterable[AnalysisOutcome]) -> tuple[int, int, int]:
    """How many entries are done, skipped and failed."""
    counts = Counter(o.status for o in outcomes)
    return counts[AnalysisStatus.DONE], counts[AnalysisStatus.SKIPPED], counts[AnalysisStatus.FAILED]


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


def one_line(err: Exception) -> str:
    """An error as one line: our own errors say what to fix; anything else keeps its type."""
    text = (str(err).strip().splitlines() or [""])[0]
    return text if isinstance(err, CnnlabError) else f"{type(err).__name__}: {text}".rstrip(": ")


def run_analyses(
    entries: Sequence[AnalysisEntry],
    shown: Mapping[str, Run],
    *,
    expected: Mapping[str, Expected],
    seeds: Sequence[int],
    report_dir: Path,
    device: str,
    data_dir: Path,
) -> list[AnalysisOutcome]:
    """Run every entry on its run's shown seed and copy its figures under `figures/analyses/` of the report."""
    outcomes = []
    for entry in entries:
        run = shown.get(entry.run)
        if run is None:
            outcomes.append(
                AnalysisOutcome(entry, AnalysisStatus.SKIPPED, message=expected[entry.run].command(seeds[:1]))
            )
            continue
        try:
            result = ANALYSES[entry.analysis](run.run_dir, entry.options, device, data_dir)
            dest = (
                report_dir
                / FIGURE_DIR
                / f"{entry.run}-seed{run.seed}"
                / result.out_dir.relative_to(run.run_dir / "analysis")
            )
            figures = tuple(copy_if_changed(f, dest / f.name).relative_to(report_dir) for f in result.figures)
        except Exception as err:  # noqa: BLE001 (one entry's failure is reported, the rest of the report still written)
            outcomes.append(AnalysisOutcome(entry, AnalysisStatus.FAILED, run, message=one_line(err)))
            continue
        outcomes.append(AnalysisOutcome(entry, AnalysisStatus.DONE, run, result, figures))
    return outcomes
