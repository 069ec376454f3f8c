"""`build_report(cfg)`: what `cnnlab-report` calls. Reads metrics.json files, never retrains, and writes the report
directory; every file is written atomically, so an interrupted report leaves the previous complete one."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cnnlab.atomic import write_text
from cnnlab.checks import one_of, positive_float, positive_int
from cnnlab.config import to_plain
from cnnlab.data import DatasetSpec, get_spec
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.models import build_model, count_neurons, count_parameters
from cnnlab.models.summary import summarize
from cnnlab.plotting import lr_sensitivity, training_curves
from cnnlab.reporting.analyses import AnalysisEntry, AnalysisOutcome, AnalysisStatus, parse_entries, run_analyses, tally
from cnnlab.reporting.collect import Run, collect_runs
from cnnlab.reporting.document import ModelInfo, ReportData, render_markdown, report_title
from cnnlab.reporting.expected import Expected, default_paths, expected_runs
from cnnlab.reporting.figures import cached_figure, copy_if_changed
from cnnlab.reporting.html import render_html
from cnnlab.reporting.replay_section import REPLAYED_DATA, Replay, find_replay, replay_command, replay_csv
from cnnlab.reporting.results import ConfigResult, summarize_config
from cnnlab.reporting.stats import spread
from cnnlab.reporting.tuned_section import tuned_section
from cnnlab.runs.checkpoint import load_checkpoint, load_weights
from cnnlab.runs.layout import CHECKPOINT, identity
from cnnlab.runs.status import UNFINISHED

TABLES = ("optimizers", "batch_norm")
log = logging.getLogger(__name__)
BEST_MODEL = "best_model.pt"
REPLAY_CSV = "replay.csv"
CSV_FIELDS = (
    "config",
    "report_run",
    "label",
    "data",
    "optimizer",
    "lr",
    "batch_norm",
    "epochs",
    "batch_size",
    "subset",
    "n_finished",
    "seeds",
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_accuracy_min",
    "test_accuracy_max",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "final_val_accuracy_mean",
    "train_time_s_mean",
    "train_time_s_std",
    "target_reached",
    "epoch_to_target_mean",
    "seconds_to_target_mean",
    "diverged",
    "failed",
    "running",
    "params",
)


@dataclass(frozen=True)
class ReportResult:
    report_dir: Path
    markdown: Path
    html: Path
    csv: Path
    best_model: Path | None
    best_label: str | None
    missing: list[tuple[Expected, list[int]]]
    unfinished: list[tuple[Expected, Run]]
    analyses: list[AnalysisOutcome]
    replay_csv: Path | None = None  # None: no notebook replay to report
    replay_applies: bool = True  # False: the notebook replayed another dataset than the report's

    @property
    def failed_analyses(self) -> list[AnalysisOutcome]:
        return [o for o in self.analyses if o.status == AnalysisStatus.FAILED]

    def lines(self) -> list[str]:
        n_missing = sum(len(seeds) for _, seeds in self.missing)
        out = [f"report: {self.markdown}", f"html:   {self.html}", f"csv:    {self.csv}"]
        if self.replay_csv:
            out.append(f"replay: {self.replay_csv}")
        else:
            out.append(
                "replay: none ("
                + (
                    "cnnlab-replay adds it to the report"
                    if self.replay_applies
                    else f"the notebook trained on {REPLAYED_DATA.title}"
                )
                + ")"
            )
        out.append(
            f"best:   {self.best_label} -> {self.best_model}" if self.best_model else "best:   none (no finished run)"
        )
        if n_missing or self.unfinished:
            out.append(
                f"{n_missing} expected runs missing, {len(self.unfinished)} unfinished; commands are in the report"
            )
        if self.analyses:
            done, skipped, failed = tally(self.analyses)
            out.append(f"analyses: {done} shown, {skipped} skipped (run missing), {failed} failed")
        out += [f"  failed: {o.entry.analysis} on {o.entry.run}: {o.message}" for o in self.failed_analyses]
        return out


@dataclass(frozen=True)
class Settings:
    data: dict[str, Any]  # the report's `data` settings: which dataset's runs it expects
    spec: DatasetSpec
    seeds: list[int]
    target: float
    confidence: float
    tables: dict[str, list[str]]
    analyses: list[AnalysisEntry] | None  # None: the Analyses section is turned off
    analysis_device: str
    replay_epochs: int

    @property
    def replay_applies(self) -> bool:
        """The notebook trained on one dataset: a report on another has no replay column."""
        return self.spec.name == REPLAYED_DATA.name


def _settings(cfg: DictConfig) -> Settings:
    seeds = list(cfg.seeds) if not isinstance(cfg.seeds, int | str) else [cfg.seeds]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"seeds={seeds!r} must be a non-empty list of integers >= 0, e.g. seeds=[0,1,2]")
    target = positive_float("target_accuracy", cfg.target_accuracy)
    if target > 100:
        raise ConfigError(f"target_accuracy={target!r} must be a percentage in (0, 100]")
    confidence = positive_float("confidence", cfg.confidence)
    if confidence >= 1:
        raise ConfigError(f"confidence={confidence!r} must be between 0 and 1 (exclusive), e.g. 0.95")
    tables = {name: list(cfg.tables.get(name) or []) for name in TABLES}
    if not tables["optimizers"]:
        raise ConfigError("tables.optimizers must name at least one run of `runs`")
    if not isinstance(cfg.analyses_enabled, bool):
        raise ConfigError(f"analyses_enabled={cfg.analyses_enabled!r} must be true or false")
    entries = parse_entries(to_plain(cfg.analyses) or [], to_plain(cfg.runs)) if cfg.analyses_enabled else None
    device = one_of("analysis_device", cfg.analysis_device, ("auto", "cpu", "cuda"))
    replay_epochs = positive_int("replay_epochs", cfg.replay_epochs)
    data = to_plain(cfg.data)
    return Settings(
        data, get_spec(data["name"]), sorted(set(seeds)), target, confidence, tables, entries, device, replay_epochs
    )


def _without_lr(config: Mapping[str, Any]) -> dict[str, Any]:
    ident = identity(config)
    ident["optimizer"] = {k: v for k, v in (ident["optimizer"] or {}).items() if k != "lr"}
    return ident


def _lr_series(
    expected: Mapping[str, Expected], keys: Sequence[str], everything: Mapping[str, ConfigResult]
) -> dict[str, dict[float, ConfigResult]]:
    """Per optimizer of Table 1, every configuration found that differs from it only in the learning rate."""
    series = {}
    for key in keys:
        wanted = _without_lr(expected[key].config)
        found = {
            r.config["optimizer"]["lr"]: r for r in everything.values() if r.config and _without_lr(r.config) == wanted
        }
        if len(found) > 1:
            series[expected[key].label] = found
    return series


def _hardware(runs: Sequence[Run]) -> str:
    seen = dict.fromkeys(
        f"{r.metrics.get('device', '?')} (torch threads: {r.metrics.get('threads', '?')})" for r in runs
    )
    torch_versions = sorted({r.metrics.get("versions", {}).get("torch", "?") for r in runs})
    return f"{', '.join(seen)}; torch {', '.join(torch_versions)}" if seen else ""


def _models(expected: Mapping[str, Expected]) -> list[ModelInfo]:
    by_bn = {e.config["model"]["batch_norm"]: e.config for e in expected.values()}
    infos = []
    for bn, config in sorted(by_bn.items()):
        shape = get_spec(config["data"]["name"]).image_shape
        model = build_model(config["model"])
        infos.append(
            ModelInfo(
                bn, count_parameters(model)["total"], count_neurons(model, shape), summarize(config["model"], shape)
            )
        )
    return infos


def _figures(
    report_dir: Path,
    *,
    expected: Mapping[str, Expected],
    tables: Mapping[str, list[str]],
    shown: Mapping[str, Run],
    series: Mapping[str, Mapping[float, ConfigResult]],
    report_lr: float,
    data_title: str,
) -> dict[str, Path]:
    figures: dict[str, Path] = {}
    fig_dir = report_dir / "figures"

    def add(name: str, path: Path) -> None:
        figures[name] = path.relative_to(report_dir)

    for name, keys in tables.items():
        histories = {
            f"{expected[k].label} (seed {shown[k].seed})": shown[k].metrics["history"] for k in keys if k in shown
        }
        if histories:
            what = "optimizers without batch norm" if name == "optimizers" else "with and without batch norm"
            title = f"{what}, {data_title}"
            path = fig_dir / f"curves_{name}.png"
            inputs = {"title": title, "histories": histories}
            add(f"curves_{name}", cached_figure(path, inputs, lambda h=histories, t=title: training_curves(h, title=t)))
    for key, run in shown.items():
        source = run.run_dir / "confusion_matrix.png"
        if source.is_file():
            add(f"confusion_{key}", copy_if_changed(source, fig_dir / f"confusion_{key}_seed{run.seed}.png"))
    if series:
        points = {
            label: [(lr, r.test_accuracy.mean, r.test_accuracy.std) for lr, r in found.items() if r.test_accuracy]
            for label, found in series.items()
        }
        points = {label: p for label, p in points.items() if p}
        if points:
            path = fig_dir / "lr_sensitivity.png"
            add("lr_sensitivity", cached_figure(path, points, lambda: lr_sensitivity(points, marked_lr=report_lr)))
    return figures


def _settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that name a configuration, from the resolved config every run records."""
    if not config:
        return {}
    data, opt = config["data"], config["optimizer"]
    return {
        "data": data["name"],
        "optimizer": opt["name"],
        "lr": opt["lr"],
        "batch_norm": config["model"]["batch_norm"],
        "epochs": config["trainer"]["epochs"],
        "batch_size": data["batch_size"],
        "subset": data["subset"],
    }


def _round(value: float | None, digits: int = 4) -> float | str:
    return "" if value is None else round(value, digits)


def _csv(everything: Mapping[str, ConfigResult], expected: Mapping[str, Expected]) -> str:
    key_of = {e.name: e for e in expected.values()}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for name, r in sorted(everything.items()):
        acc, time = r.test_accuracy, r.train_time
        k = len(r.reached)
        writer.writerow(
            {
                "config": name,
                "report_run": key_of[name].key if name in key_of else "",
                "label": key_of[name].label if name in key_of else "",
                **_settings_of(r.config),
                "n_finished": len(r.finished),
                "seeds": " ".join(str(run.seed) for run in r.finished),
                "test_accuracy_mean": _round(acc and acc.mean),
                "test_accuracy_std": _round(acc and acc.std),
                "test_accuracy_min": _round(acc and acc.min),
                "test_accuracy_max": _round(acc and acc.max),
                "test_accuracy_ci_low": _round(acc and acc.ci and acc.ci[0]),
                "test_accuracy_ci_high": _round(acc and acc.ci and acc.ci[1]),
                "final_val_accuracy_mean": _round(r.val_accuracy and r.val_accuracy.mean),
                "train_time_s_mean": _round(time and time.mean),
                "train_time_s_std": _round(time and time.std),
                "target_reached": f"{k}/{len(r.finished)}" if r.finished else "",
                "epoch_to_target_mean": _round(sum(e for e, _ in r.reached) / k if k else None),
                "seconds_to_target_mean": _round(sum(t for _, t in r.reached) / k if k else None),
                **{status: len(r.with_status(status)) for status in UNFINISHED},
                "params": r.params.get("total", ""),
            }
        )
    return buffer.getvalue()


@dataclass(frozen=True)
class Collected:
    """The runs found for the report: every configuration on its dataset, and the expected ones by run key."""

    expected: dict[str, Expected]
    everything: dict[str, ConfigResult]
    results: dict[str, ConfigResult]  # by run key; an expected configuration without runs has an empty result
    missing: list[tuple[Expected, list[int]]]  # seeds with no run directory
    unfinished: list[tuple[Expected, Run]]
    shown: dict[str, Run]  # run key -> the seed the report shows


def _collect(cfg: DictConfig, settings: Settings) -> Collected:
    seeds, target, confidence, tables = settings.seeds, settings.target, settings.confidence, settings.tables
    runs_dir = Path(cfg.paths.runs_dir)
    analysed = [entry.run for entry in settings.analyses or []]
    keys = tables["optimizers"] + tables["batch_norm"] + analysed
    expected = expected_runs(to_plain(cfg.runs), keys, list(cfg.train_overrides), runs_dir, settings.data)

    # configurations are named <data>/...: the report holds its own dataset's, never another report's
    found = {name: runs for name, runs in collect_runs(runs_dir).items() if name.split("/", 1)[0] == settings.spec.name}
    everything = {name: summarize_config(name, runs, target, confidence) for name, runs in found.items()}
    results = {
        key: everything.get(e.name) or summarize_config(e.name, [], target, confidence) for key, e in expected.items()
    }
    missing, unfinished = [], []
    for key, e in expected.items():
        present = {r.seed for r in results[key].runs}
        if absent := [s for s in seeds if s not in present]:
            missing.append((e, absent))
        unfinished += [(e, r) for r in results[key].runs if not r.finished]
    shown = {key: run for key, r in results.items() if (run := r.shown(seeds)) is not None}
    return Collected(expected, everything, results, missing, unfinished, shown)


def _best_model(results: Mapping[str, ConfigResult], path: Path) -> tuple[str, Run] | None:
    """The run key and seed with the best mean validation accuracy whose checkpoint is a valid one, copied to `path`
    (removed when there is none, so no stale model outlives its runs). A checkpoint is published only after it loads
    with weights only into the architecture its run trained."""
    candidates = [(key, r) for key, r in results.items() if r.val_accuracy is not None]
    for key, r in sorted(candidates, key=lambda kr: kr[1].val_accuracy.mean, reverse=True):
        run = r.best_seed_run
        try:
            checkpoint = run.run_dir / CHECKPOINT
            load_weights(build_model(run.metrics["config"]["model"]), load_checkpoint(checkpoint)["model"], checkpoint)
        except (CnnlabError, KeyError, TypeError) as err:
            log.warning("not publishing %s as the best model: %s", run.run_dir, err)
            continue
        copy_if_changed(checkpoint, path)
        return key, run
    path.unlink(missing_ok=True)
    return None


def _lr_table(series: Mapping[str, Mapping[float, ConfigResult]]) -> dict[str, dict[float, str]]:
    """Test accuracy by optimizer and learning rate, or the statuses of a rate's runs when none finished."""
    return {
        label: {
            lr: spread(r.test_accuracy) if r.test_accuracy else " / ".join(sorted({x.status for x in r.runs}))
            for lr, r in found.items()
        }
        for label, found in series.items()
    }


def _summarise(
    cfg: DictConfig,
    settings: Settings,
    collected: Collected,
    *,
    outcomes: list[AnalysisOutcome] | None,
    best: tuple[str, Run] | None,
    replay: Replay | None,
) -> ReportData:
    """Everything the report's documents show: tables, figures (written under the report directory), notes."""
    tables, expected, results = settings.tables, collected.expected, collected.results
    series = _lr_series(expected, tables["optimizers"], collected.everything)
    lr_table = _lr_table(series)
    replay_dir = Path(cfg.paths.replay_dir)
    return ReportData(
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        data_title=settings.spec.title,
        runs_dir=Path(cfg.paths.runs_dir),
        seeds=settings.seeds,
        target=settings.target,
        confidence=settings.confidence,
        tables=tables,
        expected=expected,
        results=results,
        published_runs={key: dict(value.get("published") or {}) for key, value in to_plain(cfg.runs).items()},
        published_counts=dict(to_plain(cfg.published).get("counts") or {}),
        published_note=str(cfg.published.get("note") or ""),
        figures=_figures(
            Path(cfg.paths.report_dir),
            expected=expected,
            tables=tables,
            shown=collected.shown,
            series=series,
            report_lr=expected[tables["optimizers"][0]].config["optimizer"]["lr"],
            data_title=settings.spec.title,
        ),
        shown=collected.shown,
        best=best,
        missing=collected.missing,
        unfinished=collected.unfinished,
        models=_models(expected),
        lr_table=lr_table,
        hardware=_hardware([run for r in results.values() for run in r.finished]),
        analyses=outcomes,
        replay=replay,
        replay_command=replay_command(settings.replay_epochs, replay_dir, Path(default_paths()["replay_dir"]))
        if settings.replay_applies
        else None,
        # the Tuned comparison section: cnnlab-tune's studies of the tables' configurations, when any exists
        tuned=tuned_section(
            cfg,
            keys=tables["optimizers"] + tables["batch_norm"],
            expected=expected,
            results=results,
            everything=collected.everything,
            report_dir=Path(cfg.paths.report_dir),
        ),
    )


def _write_files(report_dir: Path, data: ReportData, collected: Collected) -> tuple[Path, Path, Path, Path | None]:
    """REPORT.md, report.html, results.csv and replay.csv (removed when there is no replay)."""
    text = render_markdown(data)
    markdown_path = write_text(report_dir / "REPORT.md", text)
    html_path = write_text(report_dir / "report.html", render_html(text, report_dir, report_title(data)))
    csv_path = write_text(report_dir / "results.csv", _csv(collected.everything, collected.expected))
    replay_path = report_dir / REPLAY_CSV
    if data.replay is None:
        replay_path.unlink(missing_ok=True)  # a stale table would outlive the replay it came from
        return markdown_path, html_path, csv_path, None
    return markdown_path, html_path, csv_path, write_text(replay_path, replay_csv(data.replay))


def writable_report_dir(report_dir: Path) -> Path:
    """The report folder, created; one line naming the setting when it cannot be written (before any analysis runs)."""
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


def build_report(cfg: DictConfig) -> ReportResult:
    """Check the settings, collect the runs, run the analyses on the shown seeds, then summarise and write."""
    settings = _settings(cfg)
    collected = _collect(cfg, settings)
    report_dir = writable_report_dir(Path(cfg.paths.report_dir))
    outcomes = None
    if settings.analyses is not None:
        outcomes = run_analyses(
            settings.analyses,
            collected.shown,
            expected=collected.expected,
            seeds=settings.seeds,
            report_dir=report_dir,
            device=settings.analysis_device,
            data_dir=Path(cfg.paths.data_dir),
        )
    best = _best_model(collected.results, report_dir / BEST_MODEL)
    replay = None
    if settings.replay_applies:
        replay = find_replay(Path(cfg.paths.replay_dir), settings.replay_epochs, collected.expected)
    data = _summarise(cfg, settings, collected, outcomes=outcomes, best=best, replay=replay)
    markdown_path, html_path, csv_path, replay_path = _write_files(report_dir, data, collected)
    return ReportResult(
        report_dir,
        markdown_path,
        html_path,
        csv_path,
        report_dir / BEST_MODEL if best else None,
        f"{collected.expected[best[0]].label} seed {best[1].seed}" if best else None,
        collected.missing,
        collected.unfinished,
        outcomes or [],
        replay_path,
        settings.replay_applies,
    )
