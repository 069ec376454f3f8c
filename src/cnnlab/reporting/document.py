"""REPORT.md as text, section by section. Each section is a function of `ReportData`; a new section is one more
function in `SECTIONS`, a new table column one more entry in a column list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.reporting.analyses import AnalysisOutcome
from cnnlab.reporting.analysis_section import analyses_section
from cnnlab.reporting.collect import Run
from cnnlab.reporting.expected import Expected
from cnnlab.reporting.markdown import md_image, md_table
from cnnlab.reporting.replay_section import Replay, batch_norm_section, how_to_read, missing_hint, replay_cell
from cnnlab.reporting.results import ConfigResult
from cnnlab.reporting.stats import interval, spread
from cnnlab.runs.status import UNFINISHED


@dataclass(frozen=True)
class ModelInfo:
    batch_norm: bool
    params: int
    neurons: dict[str, int]
    summary: str  # counts and torchinfo's layer table


@dataclass(frozen=True)
class ReportData:
    generated_at: str
    data_title: str  # the dataset the runs trained on, as titles write it
    runs_dir: Path
    seeds: list[int]
    target: float
    confidence: float
    tables: dict[str, list[str]]  # optimizers, batch_norm -> run keys
    expected: dict[str, Expected]
    results: dict[str, ConfigResult]  # by run key
    published_runs: dict[str, dict[str, float]]  # run key -> test_accuracy, train_time_s of the original report
    published_counts: dict[str, int]
    published_note: str
    figures: dict[str, Path]  # name -> path relative to the report directory
    shown: dict[str, Run]  # run key -> the seed shown per run
    best: tuple[str, Run] | None
    missing: list[tuple[Expected, list[int]]]
    unfinished: list[tuple[Expected, Run]]
    models: list[ModelInfo]
    lr_table: dict[str, dict[float, str]] = field(default_factory=dict)
    hardware: str = ""
    analyses: list[AnalysisOutcome] | None = None  # None: the section is turned off
    replay: Replay | None = None  # None: no notebook replay, no replay column
    replay_command: str | None = "cnnlab-replay"  # how to produce the replay when there is none; None: no replay
    # applies to this dataset
    tuned: list[str] = field(default_factory=list)  # the Tuned comparison section (reporting.tuned_section); [] none

    @property
    def has_published(self) -> bool:
        """Whether the original report published values for this dataset (only then are there published columns)."""
        return any(self.published_runs.values())


def _n(result: ConfigResult) -> str:
    extra = [f"+{len(runs)} {status}" for status in UNFINISHED if (runs := result.with_status(status))]
    return f"{len(result.finished)}" + (f" ({', '.join(extra)})" if extra else "")


def _no_result(result: ConfigResult) -> str:
    """What an accuracy cell says when no seed finished: the other statuses (a diverged run is not a number)."""
    statuses = sorted({r.status for r in result.runs})
    return " / ".join(statuses) if statuses else "missing"


def _accuracy(result: ConfigResult) -> str:
    return spread(result.test_accuracy) if result.test_accuracy else _no_result(result)


def _ci(result: ConfigResult) -> str:
    return interval(result.test_accuracy) if result.test_accuracy else "—"


def _time(result: ConfigResult) -> str:
    return spread(result.train_time, 1) if result.train_time else "—"


def _published_accuracy(data: ReportData, key: str) -> str:
    value = data.published_runs.get(key, {}).get("test_accuracy")
    if value is None:
        return "—"
    accuracy = data.results[key].test_accuracy
    if accuracy is None:
        return f"{value:.2f}"
    flag = {True: "inside", False: "**outside**", None: "no interval"}[accuracy.contains(value)]
    return f"{value:.2f} ({flag})"


def _published_time(data: ReportData, key: str) -> str:
    value = data.published_runs.get(key, {}).get("train_time_s")
    return "—" if value is None else f"{value:.2f}"


Column = tuple[str, Callable[[ReportData, str], str]]  # a header may name the interval's `{level}`
INTERVAL = "{level} interval"

OPTIMIZER_COLUMNS: list[Column] = [
    ("run", lambda d, k: d.expected[k].label),
    ("n", lambda d, k: _n(d.results[k])),
    ("test accuracy % (mean ± std, min–max)", lambda d, k: _accuracy(d.results[k])),
    (INTERVAL, lambda d, k: _ci(d.results[k])),
    ("published %", _published_accuracy),
    ("train time s", lambda d, k: _time(d.results[k])),
    ("published time s", _published_time),
    ("time to target", lambda d, k: d.results[k].time_to_target()),
    ("final val accuracy %", lambda d, k: spread(d.results[k].val_accuracy) if d.results[k].val_accuracy else "—"),
]

BATCH_NORM_COLUMNS: list[Column] = [
    ("run", lambda d, k: d.expected[k].label),
    ("batch norm", lambda d, k: "yes" if d.expected[k].config["model"]["batch_norm"] else "no"),
    ("n", lambda d, k: _n(d.results[k])),
    ("test accuracy % (mean ± std, min–max)", lambda d, k: _accuracy(d.results[k])),
    (INTERVAL, lambda d, k: _ci(d.results[k])),
    ("published %", _published_accuracy),
    ("train time s", lambda d, k: _time(d.results[k])),
    ("parameters", lambda d, k: f"{p:,}" if (p := d.results[k].params.get("total")) else "—"),
]


REPLAY_COLUMN: Column = ("notebook replay %", lambda d, k: replay_cell(d.replay, k))
PUBLISHED_COLUMNS = {"published %", "published time s"}


def _rows(data: ReportData, columns: list[Column], keys: Sequence[str]) -> list[str]:
    """The table of `keys`: published columns only where there are published values; with a notebook replay, its
    column follows the published accuracy (or the interval)."""
    if not data.has_published:
        columns = [column for column in columns if column[0] not in PUBLISHED_COLUMNS]
    if data.replay is not None:
        headers = [header for header, _ in columns]
        at = headers.index("published %" if "published %" in headers else INTERVAL) + 1
        columns = [*columns[:at], REPLAY_COLUMN, *columns[at:]]
    headers = [header.format(level=f"{data.confidence:.0%}") for header, _ in columns]
    return md_table(headers, [[cell(data, key) for _, cell in columns] for key in keys])


def _settings(data: ReportData, keys: Sequence[str]) -> str:
    configs = [data.expected[k].config for k in keys]
    lrs = sorted({c["optimizer"]["lr"] for c in configs})
    epochs = sorted({c["trainer"]["epochs"] for c in configs})
    batches = sorted({c["data"]["batch_size"] for c in configs})
    subsets = sorted({c["data"]["subset"] or "all" for c in configs}, key=str)
    join = lambda values: "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)  # noqa: E731
    return (
        f"{data.data_title}, lr {join(lrs)}, untuned; epochs {join(epochs)}, batch {join(batches)}, "
        f"training images {join(subsets)}"
    )


def report_title(data: ReportData) -> str:
    """Reproduced where the original report published values for the dataset; elsewhere its experiments, repeated."""
    return f"CNN on {data.data_title}: optimizers and batch norm" + (", reproduced" if data.has_published else "")


def header(data: ReportData) -> list[str]:
    n_runs = sum(len(r.finished) for r in data.results.values())
    note = data.published_note
    lines = [
        f"# {report_title(data)}",
        "",
        f"Generated {data.generated_at} from {n_runs} finished runs of the report's configurations on "
        f"{data.data_title} "
        f"under `{data.runs_dir}`.",
        f"Runs trained on: {data.hardware or 'unknown'}. Expected seeds: {', '.join(map(str, data.seeds))}.",
        "",
    ]
    if note:
        lines += [f"Published values: {note}", ""]
    if not data.has_published:
        lines += [
            f"The original report published no values for {data.data_title}: the tables hold these runs only.",
            "",
        ]
    if data.missing or data.unfinished:
        lines += [
            f"**Incomplete:** {sum(len(s) for _, s in data.missing)} expected runs are missing and "
            f"{len(data.unfinished)} did not finish; see [Runs not in the tables](#runs-not-in-the-tables).",
            "",
        ]
    return lines


def _how_to_read(data: ReportData) -> list[str]:
    level = f"{data.confidence:.0%}"
    published, times = (
        (
            " A published value is flagged **outside** when it falls outside that interval.",
            " Published times come from other hardware: compare times within a column, not across.",
        )
        if data.has_published
        else ("", "")
    )
    return [
        "Accuracy is mean ± sample standard deviation (min–max) over the n finished seeds; the "
        f"{level} interval is the Student-t interval of the mean, cut at 0 and 100% (none for n = 1).{published} "
        f"Time to target: the first epoch whose validation accuracy reached {data.target:g}% and the training "
        f"seconds until then (means over the seeds that reached it).{times}",
        "",
    ]


def optimizer_table(data: ReportData) -> list[str]:
    keys = data.tables["optimizers"]
    replay = how_to_read(data.replay) if data.replay else []
    return [
        f"## Table 1: optimizers without batch norm ({_settings(data, keys)})",
        "",
        *_rows(data, OPTIMIZER_COLUMNS, keys),
        *_how_to_read(data),
        *replay,
    ]


def batch_norm_table(data: ReportData) -> list[str]:
    keys = data.tables["batch_norm"]
    if not keys:
        return []
    return [f"## Table 2: batch norm ({_settings(data, keys)})", "", *_rows(data, BATCH_NORM_COLUMNS, keys)]


def notebook_replay(data: ReportData) -> list[str]:
    """The batch-norm evaluation section when batch-norm runs were replayed; without a replay, how to make one (when
    one applies to the dataset)."""
    if data.replay is None:
        return missing_hint(data.replay_command) if data.replay_command else []
    keys = data.tables["optimizers"] + data.tables["batch_norm"]
    return batch_norm_section(data.replay, keys, {key: data.expected[key].label for key in keys})


def best_configuration(data: ReportData) -> list[str]:
    lines = ["## Best configuration", ""]
    if data.best is None:
        return lines + ["No configuration of the tables has a finished run yet.", ""]
    key, run = data.best
    result = data.results[key]
    return lines + [
        f"**{data.expected[key].label}** (`{result.name}`) has the highest mean final validation accuracy: "
        f"{spread(result.val_accuracy)}% (n = {result.val_accuracy.n}). Test accuracy is never used to choose. "
        f"Its seed {run.seed} checkpoint (validation accuracy {run.metrics['final_val_accuracy']:.2f}%) is copied to "
        f"`best_model.pt` (load with `torch.load(path, weights_only=True)`).",
        "",
    ]


def _figure(data: ReportData, name: str, caption: str) -> list[str]:
    return md_image(data.figures[name], caption) if name in data.figures else []


def curves(data: ReportData) -> list[str]:
    lines = ["## Training curves", "", "One seed per run (the seed shown below), on shared axes.", ""]
    lines += _figure(data, "curves_optimizers", "training curves of the optimizers without batch norm")
    lines += _figure(data, "curves_batch_norm", "training curves with and without batch norm")
    return lines if len(lines) > 4 else lines + ["No finished runs yet.", ""]


def lr_sensitivity(data: ReportData) -> list[str]:
    if "lr_sensitivity" not in data.figures:
        return []
    lrs = sorted({lr for row in data.lr_table.values() for lr in row})
    rows = [[label, *(row.get(lr, "—") for lr in lrs)] for label, row in data.lr_table.items()]
    return [
        "## Learning-rate sensitivity",
        "",
        "Test accuracy % (mean ± std over seeds) for each optimizer at each learning rate, all other settings as in "
        "Table 1 (`cnnlab-train experiment=lr_sweep`). Rankings at one untuned learning rate can flip at another.",
        "",
        *md_table(["optimizer", *(f"lr {lr:g}" for lr in lrs)], rows),
        *_figure(data, "lr_sensitivity", "test accuracy against learning rate"),
    ]


def tuned_comparison(data: ReportData) -> list[str]:
    return data.tuned


def per_run(data: ReportData) -> list[str]:
    lines = ["## Per-run results", ""]
    for key in dict.fromkeys(data.tables["optimizers"] + data.tables["batch_norm"]):
        run = data.shown.get(key)
        label = data.expected[key].label
        if run is None:
            lines += [f"### {label}", "", "No finished run.", ""]
            continue
        seeds = ", ".join(str(r.seed) for r in data.results[key].finished)
        lines += [
            f"### {label}: seed {run.seed} shown (finished seeds: {seeds})",
            "",
            f"Run directory: `{run.run_dir}`",
            "",
        ]
        report = run.run_dir / "classification_report.txt"
        if report.is_file():
            lines += ["```text", report.read_text().rstrip(), "```", ""]
        lines += _figure(data, f"confusion_{key}", f"{label} seed {run.seed}: test confusion matrix")
    return lines


def analyses(data: ReportData) -> list[str]:
    return analyses_section(data.analyses, {key: e.label for key, e in data.expected.items()})


def model(data: ReportData) -> list[str]:
    counts = data.published_counts
    rows = []
    for info in data.models:
        bn = "with batch norm" if info.batch_norm else "without batch norm"
        rows.append(
            (f"parameters, {bn}", info.params, counts.get("params_batch_norm" if info.batch_norm else "params"))
        )
    if data.models:
        neurons = data.models[0].neurons
        rows += [(f"neurons, {part}", neurons[part], counts.get(f"neurons_{part}")) for part in ("conv", "fc", "total")]
    if counts:
        table = md_table(
            ["count", "ours", "published"], [[name, f"{ours:,}", f"{p:,}" if p else "—"] for name, ours, p in rows]
        )
    else:
        table = md_table(["count", "ours"], [[name, f"{ours:,}"] for name, ours, _ in rows])
    lines = ["## Model: parameters and neurons", "", *table]
    for info in data.models:
        lines += ["```text", info.summary, "```", ""]
    return lines


def not_in_tables(data: ReportData) -> list[str]:
    lines = ["## Runs not in the tables", ""]
    if not data.missing and not data.unfinished:
        return lines + ["None: every expected run finished.", ""]
    if data.missing:
        lines += ["Missing runs, with the command that trains them:", ""]
        lines += [
            f"- {e.label}, seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}: `{e.command(s)}`"
            for e, s in data.missing
        ]
        every = sorted({seed for _, s in data.missing for seed in s})
        lines += [
            "",
            f"Or all at once (finished runs are reused): `{data.missing[0][0].command(every, 'experiment=report')}`",
            "",
        ]
    if data.unfinished:
        lines += [
            "Runs that did not finish (a failed or interrupted run resumes with its command; a diverged run "
            "repeats, so try a smaller learning rate):",
            "",
        ]
        for e, run in data.unfinished:
            why = run.metrics.get("error") or (
                f"at epoch {run.metrics['diverged_at_epoch']}" if "diverged_at_epoch" in run.metrics else ""
            )
            lines.append(
                f"- {e.label}, seed {run.seed}: **{run.status}**{f' ({why})' if why else ''}, `{run.run_dir}`: "
                f"`{e.command([run.seed])}`"
            )
        lines += [""]
    return lines


def footer(data: ReportData) -> list[str]:
    return [
        "## Files",
        "",
        "`results.csv` holds one row per configuration found under the runs directory (all seeds, "
        "every launcher), including configurations outside these tables. `report.html` is this report as one file.",
        *(
            [
                "`replay.csv` holds the notebook replay's runs: published, replayed (training mode) and eval-mode test "
                "accuracy, and the report runs each stands beside."
            ]
            if data.replay
            else []
        ),
        "",
    ]


SECTIONS: list[Callable[[ReportData], list[str]]] = [
    header,
    optimizer_table,
    batch_norm_table,
    notebook_replay,
    best_configuration,
    curves,
    lr_sensitivity,
    tuned_comparison,
    per_run,
    analyses,
    model,
    not_in_tables,
    footer,
]


def render_markdown(data: ReportData) -> str:
    return "\n".join(line for section in SECTIONS for line in section(data)).rstrip() + "\n"
