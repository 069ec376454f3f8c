"""The one interface through which a feature adds a section to the report.

A feature (training's tables, the analyses, tuning, the replay, robustness, ...) provides a plain function
``section(context: ReportContext) -> Section | None`` in its own package; `conf/report.yaml` lists those functions by
import path, and `cnnlab-report` calls each in turn and renders what they return through the report's templates. The
reporting package therefore never imports a feature: features import this module (and reporting's shared statistics,
tables and figures), never the other way round.

Three optional hooks, listed the same way, raise ConfigError on a bad setting before anything is written or add to
what others draw: a `check(settings) -> None` (`checks:`) reads the report's settings alone and runs before any run
is composed; a `check(context) -> None` (`run_checks:`) checks the composed runs; a
`column(context) -> RunColumn | None` (`columns:`) adds a column to the tables of runs another feature draws (the
notebook replay's accuracy beside each configuration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cnnlab.errors import CnnlabError, first_line
from cnnlab.reporting.collect import Run
from cnnlab.reporting.expected import Expected
from cnnlab.reporting.results import ConfigResult


@dataclass(frozen=True)
class RunColumn:
    """A column of cells by run key for the tables of runs (Tables 1 and 2), placed after the first of the `after`
    headers a table has (or last); `note`, a paragraph on how to read it, is shown below Table 1."""

    header: str
    cells: Mapping[str, str]
    after: Sequence[str] = ()
    note: str = ""


@dataclass(frozen=True)
class ReportContext:
    """What every section may read. `runs` maps each configuration key of the report (`conf/report.yaml`'s `runs`)
    to the run directories of its seeds that finished, in seed order; `labels` gives each key's display name.
    `results` holds each key's runs summarised over seeds (`expected`: how cnnlab-train names and trains it), and
    `everything` every configuration found on the report's dataset, by run-directory name."""

    settings: DictConfig
    report_dir: Path
    figures_dir: Path
    runs: Mapping[str, Sequence[Path]]
    labels: Mapping[str, str]
    seeds: Sequence[int]
    data_title: str = ""
    target: float = 0.0
    confidence: float = 0.95
    expected: Mapping[str, Expected] = field(default_factory=dict)
    results: Mapping[str, ConfigResult] = field(default_factory=dict)
    everything: Mapping[str, ConfigResult] = field(default_factory=dict)
    shown: Mapping[str, Run] = field(default_factory=dict)  # run key -> the seed whose own results are shown
    missing: Sequence[tuple[Expected, list[int]]] = ()  # the tables' runs without a run directory, by seed
    unfinished: Sequence[tuple[Expected, Run]] = ()  # the tables' runs that failed, diverged or still run
    columns: Sequence[RunColumn] = ()

    @property
    def level(self) -> str:
        """The interval's level as its column headers write it, e.g. 95%."""
        return f"{self.confidence:.0%}"


@dataclass
class Section:
    """A section as its feature wrote it. `markdown` is the body below the heading, with images referenced relative to
    `report_dir`; each entry of `tables` is written as `<name>.csv` beside REPORT.md (`table_notes` says what it
    holds); `missing` lists what the section lacked, each with the command that makes it, and is shown in the
    report's list of what is missing. A section without a title is a paragraph between its neighbours. `summary`
    lines are what cnnlab-report prints; a `failed` section makes cnnlab-report exit 1 after writing the rest, with
    its one-line `error`."""

    title: str
    anchor: str
    markdown: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: bool = False
    error: str = ""
    table_notes: dict[str, str] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)


def one_line(err: Exception) -> str:
    """An error as a section shows it: our own errors say what to fix; anything else keeps its type."""
    text = first_line(err, default=" ").strip()
    return text if isinstance(err, CnnlabError) else f"{type(err).__name__}: {text}".rstrip(": ")
