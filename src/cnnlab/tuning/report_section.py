"""The report's "Tuned comparison": per configuration of the tables, its `cnnlab-tune` study (budget, best setting and
that setting's validation accuracy) and the tuned setting's test accuracy over seeds beside the untuned Table 1.

Each configuration's study is found the way `cnnlab-tune` names it: conf/tune.yaml composed with the configuration's
training arguments and `tuning.tune_overrides`. The section appears once any of these studies exists; it reads
studies and never creates or changes one. Missing or partial studies, and missing seed runs of a tuned setting, are
listed with the command that completes them. Figures are Optuna's own (its matplotlib backend).
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from cnnlab.config import compose_config, to_plain
from cnnlab.errors import ConfigError
from cnnlab.plotting import plt  # pyplot with the Agg backend, selected before Optuna's plots import it
from cnnlab.reporting.expected import Expected, output_dir_args
from cnnlab.reporting.figures import md_figure
from cnnlab.reporting.markdown import md_table
from cnnlab.reporting.results import ConfigResult, summarize_config
from cnnlab.reporting.sections import ReportContext, Section
from cnnlab.reporting.stats import interval, spread
from cnnlab.runs.layout import config_name
from cnnlab.runs.status import RunStatus
from cnnlab.tuning.runner import seed_config
from cnnlab.tuning.settings import TuneSettings, train_config, tune_settings
from cnnlab.tuning.storage import find_study
from cnnlab.tuning.study import StudyState, study_state


@dataclass(frozen=True)
class TunedRow:
    key: str
    label: str
    settings: TuneSettings
    tune_command: str  # the cnnlab-tune command of this configuration's study
    study: optuna.Study | None  # None: no such study
    state: StudyState | None
    result: ConfigResult | None = None  # the tuned setting's runs on the tune seeds; None without a best trial or seeds
    missing_seeds: list[int] = field(default_factory=list)
    train_command: str | None = None  # trains the missing seeds of the tuned setting


def _sampler(settings: TuneSettings) -> str:
    if settings.sampler == "random":
        return f"random sampler (independent draws, seed {settings.sampler_seed})"
    return f"TPE sampler (seed {settings.sampler_seed}, random for the first {settings.startup_trials} trials)"


def tuned_comparison(context: ReportContext) -> Section | None:
    """The section (its figures written under the report's figures folder), or None when no study exists."""
    cfg = context.settings
    tuning = cfg.get("tuning")
    if tuning is None or not tuning.enabled:
        return None
    extra = [*output_dir_args(cfg.paths), *(tuning.tune_overrides or [])]
    storages: dict[str, Any] = {}
    keys = dict.fromkeys([*cfg.tables.optimizers, *(cfg.tables.get("batch_norm") or [])])
    rows = [_row(key, context.expected[key], extra, context, storages) for key in keys]
    if not any(row.study for row in rows):
        return None
    untuned = {row.key: _on_seeds(context.results.get(row.key), row.settings.seeds, context.confidence) for row in rows}
    lines = _render(rows, untuned, level=context.level) + _figures(rows, context)
    return Section("Tuned comparison", "tuned-comparison", "\n".join(lines))


def _on_seeds(untuned: ConfigResult | None, seeds: Sequence[int], confidence: float) -> ConfigResult | None:
    """The untuned configuration's result (its row of Table 1 or 2) on the tuned setting's seeds, so that tuned and
    untuned compare seed for seed; on all of its seeds when it has none of those."""
    if untuned is None:
        return None
    same = [r for r in untuned.runs if r.seed in seeds]
    if not any(r.finished for r in same):
        return untuned
    return summarize_config(untuned.name, same, untuned.target, confidence)


def _row(key: str, e: Expected, extra: list[str], context: ReportContext, storages: dict[str, Any]) -> TunedRow:
    args = (*e.train_args, *extra)
    tune_cfg = _compose_tune(args)
    settings = tune_settings(tune_cfg, check_storage_now=False)
    study = find_study(settings.storage, settings.study_name, storages)
    state = study_state(study) if study else None
    row = TunedRow(key, e.label, settings, shlex.join(("cnnlab-tune", *args)), study, state)
    if state is None or state.best is None or not settings.seeds:
        return row
    params = state.best.params
    name = config_name(to_plain(seed_config(tune_cfg, settings, params, settings.seeds[0])))
    found = context.everything.get(name)
    runs = [r for r in (found.runs if found else []) if r.seed in settings.seeds]
    row = replace(row, result=summarize_config(name, runs, context.target, context.confidence))
    # a diverged seed is done: trained again, it would diverge again
    final = {r.seed for r in runs if r.status in (RunStatus.FINISHED, RunStatus.DIVERGED)}
    missing = [s for s in settings.seeds if s not in final]
    if not missing:
        return row
    values = settings.space.overrides(train_config(tune_cfg), params)
    command = replace(e, train_args=(*e.train_args, *values)).command(missing)
    return replace(row, missing_seeds=missing, train_command=command)


def _compose_tune(overrides: Sequence[str]) -> DictConfig:
    try:
        return compose_config("tune", overrides)
    except ConfigError as err:
        raise ConfigError(f"tuning.tune_overrides do not compose with the tune config: {err}") from None


# --- rendering -----------------------------------------------------------------------------------------------------


def _trials(row: TunedRow) -> str:
    if row.state is None:
        return f"no study (budget {row.settings.trials})"
    return f"{row.state.spent} of {row.settings.trials} ({row.state.counts()})"


COLUMNS = (
    "run",
    "trials (budget)",
    "best setting",
    "its validation accuracy %",
    "n",
    "tuned: test accuracy % (mean ± std, min–max)",
    "{level} interval",
    "untuned: test accuracy % (same seeds)",
    "difference (points)",
)


def _cells(row: TunedRow, untuned: ConfigResult | None) -> list[str]:
    best = row.state.best if row.state else None
    result = row.result
    tuned = result.test_accuracy if result else None
    before = untuned.test_accuracy if untuned else None
    return [
        row.label,
        _trials(row),
        row.settings.space.describe(best.params) if best else "—",
        f"{best.value:.2f}" if best else "—",
        f"{len(result.finished)} of {len(row.settings.seeds)}" if result is not None else "—",
        result.accuracy() if result is not None and result.runs else "—",
        interval(tuned) if tuned else "—",
        f"{spread(before)} (n = {before.n})" if before is not None else "—",
        f"{tuned.mean - before.mean:+.2f}" if tuned is not None and before is not None else "—",
    ]


def _protocol(settings: TuneSettings, level: str) -> str:
    pruner = settings.pruner
    pruning = {
        "median": f"the median rule (from epoch {max(pruner.get('n_warmup_steps', 0), 1)}, after "
        f"{pruner.get('n_startup_trials')} trials)",
        "hyperband": f"Hyperband (min {pruner.get('min_resource')} epochs, reduction factor "
        f"{pruner.get('reduction_factor')})",
        "none": "no pruning",
    }[pruner["name"]]
    ranges = ", ".join(
        f"{d.name} in [{d.low:g}, {d.high:g}]{' (log)' if d.log else ''}" for d in settings.space.dimensions
    )
    seeds = ", ".join(map(str, settings.seeds)) or "none"
    epochs = f"{settings.epochs} epoch{'s' if settings.epochs != 1 else ''}"
    return (
        f"Each configuration tuned with Optuna on the validation split, the same budget for every optimizer: "
        f"{settings.trials} trials over {ranges}; {_sampler(settings)}, pruned on each epoch's validation accuracy "
        f"by {pruning}. A trial trains {epochs}; its objective is the final epoch's validation accuracy, and the test "
        f"set is never read while tuning. The best trial's setting is then trained on seeds {seeds} and tested; the "
        f"{level} interval is the Student-t interval of the mean, cut at 0 and 100%. Untuned: the same configuration "
        "at its lr of Tables 1 and 2, on those seeds (on all of its seeds when it has none of them). Difference: the "
        "tuned mean minus the untuned mean, in percentage points."
    )


def _incomplete(rows: Sequence[TunedRow]) -> list[str]:
    lines = []
    for row in rows:
        s = row.settings
        if row.state is None:
            lines.append(f"- {row.label}: no study `{s.study_name}` in `{s.storage.shown}`: `{row.tune_command}`")
        elif row.state.spent < s.trials or row.state.running:
            lines.append(f"- {row.label}: {_trials(row)}; `{row.tune_command}` completes it")
        if row.train_command:
            missing = ", ".join(map(str, row.missing_seeds))
            lines.append(f"- {row.label}: the tuned setting lacks seed(s) {missing}: `{row.train_command}`")
    if not lines:
        return []
    studies = [row for row in rows if row.state is None or row.state.spent < row.settings.trials]
    every = []
    if len(studies) > 1:
        common = shlex.split(studies[0].tune_command)[2:]  # without cnnlab-tune and this configuration's experiment
        every = ["", f"Or every study at once: `{shlex.join(('cnnlab-tune', 'experiment=report', *common))}`"]
    return ["Incomplete (each command reuses every trial and run already done):", "", *lines, *every, ""]


def _render(rows: Sequence[TunedRow], untuned: Mapping[str, ConfigResult | None], *, level: str) -> list[str]:
    lines = [_protocol(rows[0].settings, level), ""]
    columns = [column.format(level=level) for column in COLUMNS]
    lines += md_table(columns, [_cells(row, untuned.get(row.key)) for row in rows])
    return lines + _incomplete(rows)


# --- Optuna's figures ----------------------------------------------------------------------------------------------


def _inputs(study: optuna.Study) -> list[Any]:
    """What a study's figures show, for the figure cache: its finished trials."""
    return [
        (t.number, t.state.name, t.value, t.params)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    ]


def _history(studies: Sequence[optuna.Study], labels: Sequence[str]) -> Any:
    from optuna.visualization.matplotlib import plot_optimization_history

    target = "validation accuracy %"
    ax = plot_optimization_history(list(studies), target_name=target)
    # Optuna names each series "<target> of <study name>" and "Best Value of <study name>": the run's label instead
    names = {s.study_name: label for s, label in zip(studies, labels)}
    handles, texts = ax.get_legend_handles_labels()
    for i, text in enumerate(texts):
        for name, label in names.items():
            if text.endswith(f" of {name}"):
                texts[i] = f"{label}, best so far" if text.startswith("Best Value") else label
    ax.legend(handles, texts, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title("Optimization history of each study (complete trials)")
    ax.figure.set_size_inches(9, 4.5)
    return ax.figure


def _slice(study: optuna.Study, label: str) -> Any:
    from optuna.visualization.matplotlib import plot_slice

    axes = plot_slice(study, target_name="validation accuracy %")
    if hasattr(axes, "flat"):  # one plot per tuned setting
        axes.flat[0].figure.suptitle(f"{label}: complete trials")
        return axes.flat[0].figure
    axes.set_title(f"{label}: complete trials")
    return axes.figure


def _importance(study: optuna.Study, label: str) -> Any:
    from optuna.visualization.matplotlib import plot_param_importances

    fig = plot_param_importances(study).figure
    fig.suptitle(label)
    return fig


def _figures(rows: Sequence[TunedRow], context: ReportContext) -> list[str]:
    """Optuna's figures: one optimization history of every study with a complete trial, and per study the slice plot
    (and, when it tuned several settings, their importances)."""
    done = [row for row in rows if row.study is not None and row.state is not None and row.state.best is not None]
    lines: list[str] = []
    # Optuna marks its matplotlib backend experimental, and its plots switch pyplot to the ggplot style: both are
    # kept to these figures
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if done:
            studies, labels = [row.study for row in done], [row.label for row in done]
            inputs = [(label, _inputs(study)) for study, label in zip(studies, labels)]
            caption = "Optuna's optimization history of every study (complete trials)"
            lines += md_figure(context, "tuning_history.png", inputs, lambda: _history(studies, labels), caption)
        for row in done:
            inputs = (row.label, _inputs(row.study))
            caption = f"{row.label}: validation accuracy against each tuned setting"
            draw = partial(_slice, row.study, row.label)
            lines += md_figure(context, f"tuning_slice_{row.key}.png", inputs, draw, caption)
            if len(row.settings.space.dimensions) > 1 and row.state.complete > 1:
                caption = f"{row.label}: importance of each tuned setting"
                draw = partial(_importance, row.study, row.label)
                lines += md_figure(context, f"tuning_importance_{row.key}.png", inputs, draw, caption)
    return lines
