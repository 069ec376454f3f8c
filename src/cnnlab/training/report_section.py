"""Training's sections of the report: Tables 1 (optimizers) and 2 (batch norm) with `results.csv`, the best
configuration and `best_model.pt`, training curves, learning-rate sensitivity, per-run results, the model's counts and
the runs not in the tables. Each is a `section(context)` listed in conf/report.yaml."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cnnlab.config import to_plain
from cnnlab.data import get_spec
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.models import build_model, count_neurons, count_parameters
from cnnlab.models.counts import model_size_text
from cnnlab.plotting import lr_sensitivity as lr_figure
from cnnlab.plotting import training_curves
from cnnlab.reporting.figures import copy_if_changed, md_figure
from cnnlab.reporting.markdown import md_image, md_table
from cnnlab.reporting.results import ConfigResult
from cnnlab.reporting.sections import ReportContext, Section
from cnnlab.reporting.stats import interval, spread
from cnnlab.runs.checkpoint import load_checkpoint, load_weights
from cnnlab.runs.layout import CHECKPOINT, SUMMARY_SETTINGS, identity, settings_of
from cnnlab.runs.status import UNFINISHED
from cnnlab.training.artifacts import draws_figures
from cnnlab.training.runner import check_train_settings

log = logging.getLogger(__name__)
BEST_MODEL = "best_model.pt"


def check_tables(settings: DictConfig) -> None:
    """Table 1 names at least one run."""
    if not settings.tables.get("optimizers"):
        raise ConfigError("tables.optimizers must name at least one run of `runs`")


def check_runs(context: ReportContext) -> None:
    """Every expected run is one cnnlab-train accepts (or the printed commands would fail)."""
    overrides = list(context.settings.train_overrides)
    for e in context.expected.values():
        try:
            check_train_settings(OmegaConf.create(e.config))
        except ConfigError as err:
            raise ConfigError(f"train_overrides={overrides}: {err}") from None


def _keys(context: ReportContext, table: str) -> list[str]:
    return list(context.settings.tables.get(table) or [])


def _table_keys(context: ReportContext) -> list[str]:
    return list(dict.fromkeys(_keys(context, "optimizers") + _keys(context, "batch_norm")))


# --- Tables 1 and 2 ------------------------------------------------------------------------------------------------


def _published(context: ReportContext, key: str) -> dict[str, float]:
    return dict(to_plain(context.settings.runs).get(key, {}).get("published") or {})


def _has_published(context: ReportContext) -> bool:
    return any(_published(context, key) for key in context.settings.runs)


def _n(result: ConfigResult) -> str:
    extra = [f"+{len(runs)} {status}" for status in UNFINISHED if (runs := result.with_status(status))]
    return f"{len(result.finished)}" + (f" ({', '.join(extra)})" if extra else "")


def _published_accuracy(context: ReportContext, key: str) -> str:
    value = _published(context, key).get("test_accuracy")
    if value is None:
        return "—"
    accuracy = context.results[key].test_accuracy
    if accuracy is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({ {True: 'inside', False: '**outside**', None: 'no interval'}[accuracy.contains(value)] })"


def _published_time(context: ReportContext, key: str) -> str:
    value = _published(context, key).get("train_time_s")
    return "—" if value is None else f"{value:.2f}"


Cell = Callable[[ReportContext, str], str]
INTERVAL = "{level} interval"
PUBLISHED = ("published %", "published time s")
LABEL: tuple[str, Cell] = ("run", lambda c, k: c.labels[k])
N: tuple[str, Cell] = ("n", lambda c, k: _n(c.results[k]))
ACCURACY: tuple[str, Cell] = ("test accuracy % (mean ± std, min–max)", lambda c, k: c.results[k].accuracy())
CI: tuple[str, Cell] = (INTERVAL, lambda c, k: interval(r.test_accuracy) if (r := c.results[k]).test_accuracy else "—")
TIME: tuple[str, Cell] = (
    "train time s",
    lambda c, k: spread(r.train_time, 1) if (r := c.results[k]).train_time else "—",
)
OPTIMIZER_COLUMNS: list[tuple[str, Cell]] = [
    LABEL,
    N,
    ACCURACY,
    CI,
    ("published %", _published_accuracy),
    TIME,
    ("published time s", _published_time),
    ("time to target", lambda c, k: c.results[k].time_to_target()),
    ("final val accuracy %", lambda c, k: spread(r.val_accuracy) if (r := c.results[k]).val_accuracy else "—"),
]
BATCH_NORM_COLUMNS: list[tuple[str, Cell]] = [
    LABEL,
    ("batch norm", lambda c, k: "yes" if c.expected[k].config["model"]["batch_norm"] else "no"),
    N,
    ACCURACY,
    CI,
    ("published %", _published_accuracy),
    TIME,
    ("parameters", lambda c, k: f"{p:,}" if (p := c.results[k].params.get("total")) else "—"),
]


def _rows(context: ReportContext, columns: list[tuple[str, Cell]], keys: Sequence[str]) -> list[str]:
    """The table of `keys`: published columns only where there are published values, and the other features'
    columns (context.columns) each after the first of its `after` headers present."""
    if not _has_published(context):
        columns = [column for column in columns if column[0] not in PUBLISHED]
    columns = [(header.format(level=context.level), cell) for header, cell in columns]
    for extra in context.columns:
        headers = [header for header, _ in columns]
        at = next((headers.index(h) + 1 for h in extra.after if h in headers), len(headers))
        columns = [*columns[:at], (extra.header, lambda c, k, e=extra: e.cells.get(k, "—")), *columns[at:]]
    headers = [header for header, _ in columns]
    return md_table(headers, [[cell(context, key) for _, cell in columns] for key in keys])


def _settings(context: ReportContext, keys: Sequence[str]) -> str:
    """The settings a table's runs share, or each value they take, in order (numbers before "all" images)."""
    configs = [context.expected[k].config for k in keys]

    def join(values: set[Any]) -> str:
        ordered = sorted(values, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0))
        return "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in ordered)

    lrs, epochs = {c["optimizer"]["lr"] for c in configs}, {c["trainer"]["epochs"] for c in configs}
    batches, subsets = {c["data"]["batch_size"] for c in configs}, {c["data"]["subset"] or "all" for c in configs}
    tested = {c["data"].get("test_subset") or "all" for c in configs}
    return (
        f"{context.data_title}, lr {join(lrs)}, untuned; epochs {join(epochs)}, batch {join(batches)}, "
        f"training images {join(subsets)}" + ("" if tested == {"all"} else f", test images {join(tested)}")
    )


def _how_to_read(context: ReportContext) -> list[str]:
    published, times = "", ""
    if _has_published(context):
        published = " A published value is flagged **outside** when it falls outside that interval."
        times = " Published times come from other hardware: compare times within a column, not across."
    return [
        "Accuracy is mean ± sample standard deviation (min–max) over the n finished seeds; the "
        f"{context.level} interval is the Student-t interval of the mean, cut at 0 and 100% (none for n = 1)."
        f"{published} Time to target: the first epoch whose validation accuracy reached {context.target:g}% and the "
        f"training seconds until then (means over the seeds that reached it).{times}",
        "",
    ]


def optimizer_table(context: ReportContext) -> Section:
    """Table 1, with `results.csv`: every configuration found on the report's dataset."""
    keys = _keys(context, "optimizers")
    notes = [line for c in context.columns if c.note for line in (c.note, "")]
    return Section(
        f"Table 1: optimizers without batch norm ({_settings(context, keys)})",
        "table-1",
        "\n".join([*_rows(context, OPTIMIZER_COLUMNS, keys), *_how_to_read(context), *notes]),
        tables={"results": _csv_rows(context)},
        table_notes={
            "results": "holds one row per configuration found under the runs directory (all seeds, every launcher), "
            "including configurations outside these tables."
        },
    )


def batch_norm_table(context: ReportContext) -> Section | None:
    keys = _keys(context, "batch_norm")
    if not keys:
        return None
    title = f"Table 2: batch norm ({_settings(context, keys)})"
    return Section(title, "table-2", "\n".join(_rows(context, BATCH_NORM_COLUMNS, keys)))


def _round(value: float | None, digits: int = 4) -> float | str:
    return "" if value is None else round(value, digits)


def _csv_rows(context: ReportContext) -> list[dict[str, Any]]:
    key_of = {e.name: key for key, e in context.expected.items() if key in _table_keys(context)}
    rows = []
    for name, r in sorted(context.everything.items()):
        acc, time, k = r.test_accuracy, r.train_time, len(r.reached)
        rows.append(
            {
                "config": name,
                "report_run": key_of.get(name, ""),
                "label": context.labels[key_of[name]] if name in key_of else "",
                **(settings_of(r.config) if r.config else dict.fromkeys(SUMMARY_SETTINGS, "")),
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
    return rows


# --- best configuration, curves, learning rates --------------------------------------------------------------------


def _publish_best(context: ReportContext) -> tuple[str, ConfigResult] | None:
    """The run key with the best mean validation accuracy whose best seed's checkpoint is a valid one, copied to
    best_model.pt (removed when there is none, so no stale model outlives its runs). A checkpoint is published only
    after it loads with weights only into the architecture its run trained."""
    path = context.report_dir / BEST_MODEL
    candidates = [(key, context.results[key]) for key in _table_keys(context) if context.results[key].val_accuracy]
    for key, r in sorted(candidates, key=lambda kr: kr[1].val_accuracy.mean, reverse=True):
        checkpoint = r.best_seed_run.run_dir / CHECKPOINT
        try:
            model = build_model(r.best_seed_run.metrics["config"]["model"])
            load_weights(model, load_checkpoint(checkpoint)["model"], checkpoint)
        except (CnnlabError, KeyError, TypeError) as err:
            log.warning("not publishing %s as the best model: %s", checkpoint.parent, err)
            continue
        copy_if_changed(checkpoint, path)
        return key, r
    path.unlink(missing_ok=True)
    return None


def best_configuration(context: ReportContext) -> Section:
    """The best configuration by validation accuracy (never test accuracy), its checkpoint copied to best_model.pt."""
    best = _publish_best(context)
    if best is None:
        text = "No configuration of the tables has a finished run yet."
        return Section("Best configuration", "best-configuration", text, summary=["best:   none (no finished run)"])
    key, result = best
    run, label = result.best_seed_run, context.labels[key]
    text = (
        f"**{label}** (`{result.name}`) has the highest mean final validation accuracy: "
        f"{spread(result.val_accuracy)}% (n = {result.val_accuracy.n}). Test accuracy is never used to choose. "
        f"Its seed {run.seed} checkpoint (validation accuracy {run.metrics['final_val_accuracy']:.2f}%) is copied to "
        f"`{BEST_MODEL}` (load with `torch.load(path, weights_only=True)`)."
    )
    summary = [f"best:   {label} seed {run.seed} -> {context.report_dir / BEST_MODEL}"]
    return Section("Best configuration", "best-configuration", text, summary=summary)


def curves(context: ReportContext) -> Section:
    """One seed per run of each table, on shared axes."""
    lines = ["One seed per run (the seed shown below), on shared axes.", ""]
    for table, what in (("optimizers", "optimizers without batch norm"), ("batch_norm", "with and without batch norm")):
        shown = {k: context.shown[k] for k in _keys(context, table) if k in context.shown}
        histories = {f"{context.labels[k]} (seed {run.seed})": run.metrics["history"] for k, run in shown.items()}
        if histories:
            title = f"{what}, {context.data_title}"
            inputs = {"title": title, "histories": histories}
            draw = partial(training_curves, histories, title=title)
            lines += md_figure(context, f"curves_{table}.png", inputs, draw, f"training curves of the {what}")
    return Section(
        "Training curves", "training-curves", "\n".join(lines if len(lines) > 2 else lines + ["No finished runs yet."])
    )


def _without_lr(config: Mapping[str, Any]) -> dict[str, Any]:
    ident = identity(config)
    ident["optimizer"] = {k: v for k, v in (ident["optimizer"] or {}).items() if k != "lr"}
    return ident


def lr_sensitivity(context: ReportContext) -> Section | None:
    """Per optimizer of Table 1, every configuration found that differs from it only in the learning rate."""
    series = {}
    for key in _keys(context, "optimizers"):
        wanted = _without_lr(context.expected[key].config)
        found = {
            r.config["optimizer"]["lr"]: r
            for r in context.everything.values()
            if r.config and _without_lr(r.config) == wanted
        }
        if len(found) > 1:
            series[context.labels[key]] = found
    points = {
        label: p
        for label, found in series.items()
        if (p := [(lr, r.test_accuracy.mean, r.test_accuracy.std) for lr, r in found.items() if r.test_accuracy])
    }
    if not points:
        return None
    report_lr = context.expected[_keys(context, "optimizers")[0]].config["optimizer"]["lr"]
    draw = partial(lr_figure, points, marked_lr=report_lr)
    lrs = sorted({lr for found in series.values() for lr in found})
    rows = [[label, *(found[lr].accuracy() if lr in found else "—" for lr in lrs)] for label, found in series.items()]
    lines = [
        "Test accuracy % (mean ± std over seeds) for each optimizer at each learning rate, all other settings as in "
        "Table 1 (`cnnlab-train experiment=lr_sweep`). Rankings at one untuned learning rate can flip at another.",
        "",
        *md_table(["optimizer", *(f"lr {lr:g}" for lr in lrs)], rows),
        *md_figure(context, "lr_sensitivity.png", points, draw, "test accuracy against learning rate"),
    ]
    return Section("Learning-rate sensitivity", "learning-rate-sensitivity", "\n".join(lines))


# --- per run, model, runs not in the tables ------------------------------------------------------------------------


def per_run(context: ReportContext) -> Section:
    """The shown seed of each run: its directory, classification report and confusion matrix."""
    lines = []
    for key in _table_keys(context):
        run, label = context.shown.get(key), context.labels[key]
        if run is None:
            lines += [f"### {label}", "", "No finished run.", ""]
            continue
        seeds = ", ".join(str(r.seed) for r in context.results[key].finished)
        lines += [
            f"### {label}: seed {run.seed} shown (finished seeds: {seeds})",
            "",
            f"Run directory: `{run.run_dir}`",
            "",
        ]
        report = run.run_dir / "classification_report.txt"
        if report.is_file():
            lines += ["```text", report.read_text().rstrip(), "```", ""]
        if (source := run.run_dir / "confusion_matrix.png").is_file():
            path = copy_if_changed(source, context.figures_dir / f"confusion_{key}_seed{run.seed}.png")
            lines += md_image(path.relative_to(context.report_dir), f"{label} seed {run.seed}: test confusion matrix")
        elif not draws_figures(run.metrics.get("config") or {}):  # its numbers are in the run's confusion_matrix.csv
            lines += ["No confusion-matrix figure: the run was trained with `trainer.figures=false`.", ""]
    return Section("Per-run results", "per-run-results", "\n".join(lines))


def model(context: ReportContext) -> Section:
    """Parameter and neuron counts of the model with and without batch norm, beside the published ones."""
    counts = dict(to_plain(context.settings.published).get("counts") or {})
    by_bn = {
        e.config["model"]["batch_norm"]: e.config for key, e in context.expected.items() if key in _table_keys(context)
    }
    rows, summaries = [], []
    for bn, config in sorted(by_bn.items()):
        shape = get_spec(config["data"]["name"]).image_shape
        net = build_model(config["model"])
        what = "with batch norm" if bn else "without batch norm"
        rows.append(
            (f"parameters, {what}", count_parameters(net)["total"], counts.get("params_batch_norm" if bn else "params"))
        )
        summaries += ["```text", model_size_text(config["model"], shape), "```", ""]
        neurons = count_neurons(net, shape)
    if by_bn:
        rows += [(f"neurons, {part}", neurons[part], counts.get(f"neurons_{part}")) for part in ("conv", "fc", "total")]
    if counts:
        table = md_table(
            ["count", "ours", "published"], [[n, f"{ours:,}", f"{p:,}" if p else "—"] for n, ours, p in rows]
        )
    else:
        table = md_table(["count", "ours"], [[n, f"{ours:,}"] for n, ours, _ in rows])
    return Section("Model: parameters and neurons", "model-parameters-and-neurons", "\n".join([*table, *summaries]))


def not_in_tables(context: ReportContext) -> Section:
    """The tables' expected runs that are missing (with the command that trains them) or did not finish."""
    missing, unfinished = context.missing, context.unfinished
    n_missing = sum(len(s) for _, s in missing)
    summary = [f"{n_missing} expected runs missing, {len(unfinished)} unfinished; commands are in the report"]
    lines = []
    if not missing and not unfinished:
        lines, summary = ["None: every expected run finished."], []
    if missing:
        lines += ["Missing runs, with the command that trains them:", ""]
        lines += [
            f"- {e.label}, seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}: `{e.command(s)}`"
            for e, s in missing
        ]
        every = sorted({seed for _, s in missing for seed in s})
        lines += [
            "",
            f"Or all at once (finished runs are reused): `{missing[0][0].command(every, 'experiment=report')}`",
            "",
        ]
    if unfinished:
        lines += [
            "Runs that did not finish (a failed or interrupted run resumes with its command; a diverged run "
            "repeats, so try a smaller learning rate):",
            "",
        ]
        for e, run in unfinished:
            why = run.metrics.get("error") or (
                f"at epoch {run.metrics['diverged_at_epoch']}" if "diverged_at_epoch" in run.metrics else ""
            )
            status = f"**{run.status}**" + (f" ({why})" if why else "")
            lines.append(f"- {e.label}, seed {run.seed}: {status}, `{run.run_dir}`: `{e.command([run.seed])}`")
    return Section("Runs not in the tables", "runs-not-in-the-tables", "\n".join(lines), summary=summary)
