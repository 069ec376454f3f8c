"""The one interface through which a feature adds a section to the report.

A feature (training's tables, the analyses, tuning, the replay, robustness, ...) provides a plain function
``section(context: ReportContext) -> Section | None`` in its own package; `conf/report.yaml` lists those functions by
import path, and `cnnlab-report` calls each in turn and renders what they return through the report's templates. The
reporting package therefore never imports a feature: features import this module (and reporting's shared statistics,
tables and figures), never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig


@dataclass(frozen=True)
class ReportContext:
    """What every section may read. `runs` maps each configuration key of the report (`conf/report.yaml`'s `runs`)
    to the run directories of its seeds that finished, in seed order; `labels` gives each key's display name."""

    settings: DictConfig
    report_dir: Path
    figures_dir: Path
    runs: Mapping[str, Sequence[Path]]
    labels: Mapping[str, str]
    seeds: Sequence[int]
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    """A section as its feature wrote it. `markdown` is the body below the heading, with images referenced relative to
    `report_dir`; each entry of `tables` is written as `<name>.csv` beside REPORT.md; `missing` lists what the section
    lacked, each with the command that makes it, and is shown in the report's list of what is missing."""

    title: str
    anchor: str
    markdown: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: bool = False


class SectionProvider(Protocol):
    """A feature's entry in the report: returns its section, or None where it has nothing to show."""

    def __call__(self, context: ReportContext) -> Section | None: ...
