"""`build_report(cfg)`: what `cnnlab-report` calls. Collects the runs the report expects, hands them to each section
provider listed in conf/report.yaml, and writes REPORT.md, report.html and each section's tables as CSV. Reads
metrics.json files, never retrains; every file is written atomically, so an interrupted report leaves the previous
complete one."""

from __future__ import annotations

import csv
import importlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError

from cnnlab.atomic import write_text
from cnnlab.checks import percentage, positive_float
from cnnlab.config import to_plain
from cnnlab.data import get_spec
from cnnlab.errors import ConfigError
from cnnlab.reporting.collect import Run, collect_runs
from cnnlab.reporting.expected import Expected, expected_runs
from cnnlab.reporting.render import render_html, render_markdown
from cnnlab.reporting.results import summarize_config
from cnnlab.reporting.sections import ReportContext, RunColumn, Section, one_line


@dataclass(frozen=True)
class ReportResult:
    report_dir: Path
    markdown: Path
    html: Path
    tables: dict[str, Path]  # each section's tables, by name: <name>.csv
    sections: list[Section]
    missing: list[tuple[Expected, list[int]]]  # the tables' runs without a run directory, and their seeds

    @property
    def failed(self) -> list[Section]:
        return [s for s in self.sections if s.failed]

    def lines(self) -> list[str]:
        out = [f"report: {self.markdown}", f"html:   {self.html}"]
        out += [f"{name + ':':<7} {path}" for name, path in self.tables.items()]
        return out + [line for s in self.sections for line in s.summary]


def _seeds(value: Any) -> list[int]:
    seeds = list(value) if not isinstance(value, int | str) else [value]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"seeds={seeds!r} must be a non-empty list of integers >= 0, e.g. seeds=[0,1,2]")
    return sorted(set(seeds))


def _confidence(value: Any) -> float:
    confidence = positive_float("confidence", value)
    if confidence >= 1:
        raise ConfigError(f"confidence={confidence!r} must be between 0 and 1 (exclusive), e.g. 0.95")
    return confidence


def _providers(cfg: DictConfig, key: str) -> list[tuple[str, Callable[..., Any]]]:
    """The functions `cfg.<key>` lists by import path; a bad entry is a ConfigError. (importlib rather than Hydra's
    get_method, which logs three lines of its own before the one-line error.)"""
    out = []
    for i, path in enumerate(cfg.get(key) or []):
        module, _, name = str(path).rpartition(".")
        try:
            function = getattr(importlib.import_module(module), name, None) if module else None
        except ImportError:
            function = None
        if not callable(function):
            raise ConfigError(
                f"{key}[{i}]={path!r} is not an importable function; give its module path and name, e.g. "
                "cnnlab.training.report_section.curves"
            )
        out.append((str(path), function))
    return out


def _context(cfg: DictConfig) -> ReportContext:
    """The report's runs: each key of `runs` composed as cnnlab-train composes it, and every run on the report's
    dataset summarised over seeds; with the expected runs of the tables that are missing or did not finish."""
    seeds = _seeds(cfg.seeds)
    target = percentage("target_accuracy", cfg.target_accuracy)
    confidence = _confidence(cfg.confidence)
    runs = to_plain(cfg.runs)
    data = to_plain(cfg.data)
    spec = get_spec(data["name"])
    runs_dir = Path(cfg.paths.runs_dir)
    in_tables = [key for keys in to_plain(cfg.tables).values() for key in keys or []]
    expected = expected_runs(runs, [*in_tables, *runs], list(cfg.train_overrides), runs_dir, data)
    # configurations are named <data>/...: the report holds its own dataset's, never another report's
    found = {name: group for name, group in collect_runs(runs_dir).items() if name.split("/", 1)[0] == spec.name}
    everything = {name: summarize_config(name, group, target, confidence) for name, group in found.items()}
    results = {
        key: everything.get(e.name) or summarize_config(e.name, [], target, confidence) for key, e in expected.items()
    }
    missing, unfinished = [], []
    for key in dict.fromkeys(in_tables):
        present = {r.seed for r in results[key].runs}
        if absent := [s for s in seeds if s not in present]:
            missing.append((expected[key], absent))
        unfinished += [(expected[key], r) for r in results[key].runs if not r.finished]
    shown = {key: run for key, r in results.items() if (run := r.shown(seeds)) is not None}
    report_dir = Path(cfg.paths.report_dir)
    return ReportContext(
        settings=cfg,
        report_dir=report_dir,
        figures_dir=report_dir / "figures",
        runs={key: [r.run_dir for r in result.finished] for key, result in results.items()},
        labels={key: e.label for key, e in expected.items()},
        seeds=seeds,
        data_title=spec.title,
        target=target,
        confidence=confidence,
        expected=expected,
        results=results,
        everything=everything,
        shown=shown,
        missing=missing,
        unfinished=unfinished,
    )


def writable_report_dir(report_dir: Path) -> Path:
    """The report folder, created; one line naming the setting when it cannot be written (before any section runs)."""
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        problem = None if os.access(report_dir, os.W_OK) else "Permission denied"
    except OSError as err:
        problem = err.strerror
    if problem:
        raise ConfigError(
            f"paths.report_dir={report_dir} cannot be written ({problem}); point paths.report_dir (or "
            "paths.output_dir) at a writable folder"
        )
    return report_dir


def _call(path: str, provider: Callable[[ReportContext], Section | None], context: ReportContext) -> Section | None:
    """A provider's section; one that raises anything but a bad setting is shown as failed with its one-line error."""
    try:
        return provider(context)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 (one section's failure is reported, the rest of the report still written)
        name, message = path.rsplit(".", 1)[-1], one_line(err)
        return Section(name, name, f"**Failed:** {message}", failed=True, error=message)


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    """A table as CSV, its columns in the order the rows first name them."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _files(sections: Sequence[Section]) -> Section:
    """The report's own last section: what each CSV beside REPORT.md holds."""
    notes = [f"`{name}.csv` {note}" for s in sections for name, note in s.table_notes.items()]
    text = " ".join([*notes, "`report.html` is this report as one file."])
    return Section("Files", "files", text)


def _missing(sections: Sequence[Section]) -> Section | None:
    """What the sections lacked, gathered in one list with the commands that make it."""
    items = [f"- {item}" for s in sections for item in s.missing]
    return Section("What else is missing", "what-else-is-missing", "\n".join(items)) if items else None


def _write_tables(report_dir: Path, sections: Sequence[Section]) -> dict[str, Path]:
    """Each section's tables as `<name>.csv`; any other CSV file in the report folder (a table no section has any
    more, such as the replay's once the replay is gone) is removed, so a stale table never outlives its source."""
    tables = {name: rows for s in sections for name, rows in s.tables.items()}
    written = {name: write_text(report_dir / f"{name}.csv", _csv(rows)) for name, rows in tables.items()}
    for stale in set(report_dir.glob("*.csv")) - set(written.values()):
        stale.unlink()
    return written


def build_report(cfg: DictConfig) -> ReportResult:
    """Check every setting (each feature's on the settings alone, then the report's own and each feature's on the
    composed runs), then call the column providers and the sections in order, and write the documents and tables."""
    providers = {key: _providers(cfg, key) for key in ("checks", "run_checks", "columns", "sections")}
    for i, (path, check) in enumerate(providers["checks"]):
        try:
            check(cfg)
        except ConfigAttributeError as err:  # a check written for the context, given the settings
            raise ConfigError(
                f"checks[{i}]={path!r} needs the composed runs ({one_line(err)}); list it under run_checks"
            ) from err
    context = _context(cfg)
    for _, check in providers["run_checks"]:
        check(context)
    report_dir = writable_report_dir(context.report_dir)
    context.figures_dir.mkdir(exist_ok=True)  # a section may save its figures there by its own means
    columns: list[RunColumn] = [c for _, provider in providers["columns"] if (c := provider(context)) is not None]
    context = replace(context, columns=columns)
    sections = [s for path, provider in providers["sections"] if (s := _call(path, provider, context)) is not None]
    sections += [s for s in (_missing(sections), _files(sections)) if s is not None]
    published = any(dict(run.get("published") or {}) for run in to_plain(cfg.runs).values())
    head = {
        "title": f"CNN on {context.data_title}: optimizers and batch norm" + (", reproduced" if published else ""),
        "has_published": published,
        "note": str(cfg.published.get("note") or ""),
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "data_title": context.data_title,
        "runs_dir": cfg.paths.runs_dir,
        "seeds": context.seeds,
        "n_runs": sum(len(r.finished) for r in context.results.values()),
        "hardware": _hardware([run for r in context.results.values() for run in r.finished]),
        "n_missing": sum(len(s) for _, s in context.missing),
        "unfinished": context.unfinished,
    }
    markdown = write_text(report_dir / "REPORT.md", render_markdown(head, sections))
    html = write_text(report_dir / "report.html", render_html(head, sections, report_dir))
    tables = _write_tables(report_dir, sections)
    return ReportResult(report_dir, markdown, html, tables, sections, list(context.missing))


def _hardware(runs: Sequence[Run]) -> str:
    seen = dict.fromkeys(
        f"{r.metrics.get('device', '?')} (torch threads: {r.metrics.get('threads', '?')})" for r in runs
    )
    torch_versions = sorted({r.metrics.get("versions", {}).get("torch", "?") for r in runs})
    return f"{', '.join(seen)}; torch {', '.join(torch_versions)}" if seen else ""
