"""The notebook replay in the report: `cnnlab-replay`'s runs matched to the report's configurations by optimizer and
batch norm, the "notebook replay" column of Tables 1 and 2, the section on batch norm in the notebook's evaluation,
`replay.csv`, and the one-line hint when there is no replay."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cnnlab.checks import positive_int
from cnnlab.data import MNIST_SPEC
from cnnlab.replay.published import (
    ADAPTIVE_TEST_TOLERANCE,
    NOTEBOOK_RUNS,
    TEST_TOLERANCE,
    TRAIN_LOSS_TOLERANCE,
    VAL_ACCURACY_TOLERANCE,
)
from cnnlab.replay.results import load_replay, summary_path
from cnnlab.reporting.expected import default_paths
from cnnlab.reporting.markdown import md_table
from cnnlab.reporting.sections import ReportContext, RunColumn, Section

# the notebook trained on MNIST (cnnlab-replay reads MNIST only): a report on another dataset has no replay to show
REPLAYED_DATA = MNIST_SPEC
# cnnlab-replay's default: as many epochs as the notebook published
PUBLISHED_EPOCHS = len(NOTEBOOK_RUNS[0].epochs)


@dataclass(frozen=True)
class Replay:
    """One replay-e<epochs>.json, with its runs by report key (a configuration without a replayed run is absent)."""

    path: Path
    summary: dict[str, Any]
    by_key: dict[str, dict[str, Any]]

    @property
    def epochs(self) -> int:
        return self.summary["epochs"]


def replay_command(epochs: int, replay_dir: Path, default_replay_dir: Path) -> str:
    args = ["cnnlab-replay"]
    if epochs != PUBLISHED_EPOCHS:
        args.append(f"epochs={epochs}")
    if replay_dir != default_replay_dir:
        args.append(f"paths.replay_dir={replay_dir}")
    return shlex.join(args)


def replay_cell(replay: Replay, key: str) -> str:
    """Replayed test accuracy (training mode, as published), its difference to published, and the tolerance verdict."""
    run = replay.by_key.get(key)
    if run is None:
        return "not replayed"
    text = f"{run['test_accuracy']:.2f}"
    if run["published_test_accuracy"] is not None:
        text += f" ({run['test_accuracy'] - run['published_test_accuracy']:+.2f})"
    return text if run["within_tolerance"] else f"{text} **outside tolerance**"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _how_to_read(replay: Replay) -> str:
    s = replay.summary
    if replay.epochs == PUBLISHED_EPOCHS:
        test = (
            f", with its difference to the published value. **outside tolerance** marks a replay whose test accuracy "
            f"is more than {TEST_TOLERANCE:g} points ({ADAPTIVE_TEST_TOLERANCE:g} for RMSProp and Adam) from the "
            f"published one, or"
        )
    else:
        test = (
            f" after {replay.epochs} of the notebook's {PUBLISHED_EPOCHS} epochs, whose test accuracy was never "
            f"published. **outside tolerance** marks a replay"
        )
    return (
        f"Notebook replay: the original notebook's run with the same optimizer and batch norm, replayed from its one "
        f"random stream by `cnnlab-replay` ({_count(replay.epochs, 'epoch')}, {s['device']}, "
        f"{_count(s['threads'], 'thread')}, torch {s['torch']}; `{replay.path}`). Its test accuracy is the notebook's "
        f"training-mode one{test} whose per-epoch train loss or validation accuracy (SGD, Momentum, SGD + batch norm) "
        f"is more than {TRAIN_LOSS_TOLERANCE:g} or {VAL_ACCURACY_TOLERANCE:g} points from the published one."
    )


def check_replay(settings: DictConfig) -> None:
    """Which replay the report shows, checked before anything is written."""
    positive_int("replay_epochs", settings.replay_epochs)


def _replay(context: ReportContext) -> Replay | None:
    """The replay of the report's epochs, where there is one and it applies (the notebook trained on MNIST only); a
    report run gets the replayed run with its optimizer and batch norm."""
    replay_dir, epochs = Path(context.settings.paths.replay_dir), context.settings.replay_epochs
    summary = load_replay(replay_dir, epochs) if context.settings.data.name == REPLAYED_DATA.name else None
    if summary is None:
        return None
    by_key = {}
    for key, e in context.expected.items():
        wanted = (e.config["optimizer"]["name"], e.config["model"]["batch_norm"])
        if run := next((r for r in summary["runs"].values() if (r["optimizer"], r["batch_norm"]) == wanted), None):
            by_key[key] = run
    return Replay(summary_path(replay_dir, epochs), summary, by_key)


def replay_column(context: ReportContext) -> RunColumn | None:
    """The "notebook replay %" column of the tables, after the published accuracy (or the interval)."""
    replay = _replay(context)
    if replay is None:
        return None
    cells = {key: replay_cell(replay, key) for key in context.expected}
    return RunColumn("notebook replay %", cells, ("published %", f"{context.level} interval"), _how_to_read(replay))


def notebook_replay(context: ReportContext) -> Section:
    """The batch-norm evaluation section when batch-norm runs were replayed, with replay.csv; without a replay, how to
    make one."""
    if context.settings.data.name != REPLAYED_DATA.name:
        return Section(
            "", "notebook-replay", "", summary=[f"replay: none (the notebook trained on {REPLAYED_DATA.title})"]
        )
    replay = _replay(context)
    if replay is None:
        paths = context.settings.paths
        command = replay_command(
            context.settings.replay_epochs, Path(paths.replay_dir), Path(default_paths()["replay_dir"])
        )
        hint = (
            f"No notebook replay yet: `{command}` (about 25 minutes on 2 CPU cores) replays the original notebook's "
            'runs and adds a "notebook replay" column and a section on batch norm in its evaluation.'
        )
        return Section("", "notebook-replay", hint, summary=["replay: none (cnnlab-replay adds it to the report)"])
    keys = list(dict.fromkeys([*context.settings.tables.optimizers, *context.settings.tables.batch_norm]))
    rows = _batch_norm_rows(replay, keys, context.labels)
    title, text = "", ""
    if rows:
        title = "Batch norm in the notebook's evaluation"
        text = "\n".join(
            [
                "The notebook never called `net.eval()`, so during validation and test its batch-norm layers "
                "normalised each batch of 64 by that batch's own statistics (and folded the test data into their "
                "running statistics) instead of using the running statistics learned in training. The same final "
                f"weights of the replay, evaluated both ways ({replay.epochs} epochs):",
                "",
                *md_table(
                    [
                        "run",
                        "published % (training mode)",
                        "notebook replay % (training mode)",
                        "eval mode % (same weights)",
                        "eval − training",
                    ],
                    rows,
                ),
                "The independently seeded runs in the tables above are always evaluated in eval mode.",
            ]
        )
    note = (
        "holds the notebook replay's runs: published, replayed (training mode) and eval-mode test accuracy, and the "
        "report runs each stands beside."
    )
    return Section(
        title,
        "batch-norm-in-the-notebooks-evaluation",
        text,
        {"replay": _csv_rows(replay)},
        table_notes={"replay": note},
    )


def _batch_norm_rows(replay: Replay, keys: Sequence[str], labels: Mapping[str, str]) -> list[list[str]]:
    """Training-mode (published, replayed) against eval-mode accuracy of the same weights, for the batch-norm runs."""
    rows = []
    for key in keys:
        run = replay.by_key.get(key)
        if run is None or not run["batch_norm"]:
            continue
        published, train_mode, eval_mode = _accuracies(run)
        rows.append(
            [
                labels[key],
                "—" if published is None else f"{published:.2f}",
                f"{train_mode:.2f}",
                f"{eval_mode:.2f}",
                f"{eval_mode - train_mode:+.2f}",
            ]
        )
    return rows


def _accuracies(run: Mapping[str, Any]) -> tuple[float | None, float, float]:
    """A replayed run's published and replayed test accuracy (training mode), and its eval-mode one."""
    return run["published_test_accuracy"], run["test_accuracy"], run["test_accuracy_eval_mode"]


def _csv_rows(replay: Replay) -> list[dict[str, Any]]:
    """One row per replayed run, with the report runs it stands beside."""
    rows = []
    for name, run in replay.summary["runs"].items():
        published, train_mode, eval_mode = _accuracies(run)
        rows.append(
            {
                "replay_run": name,
                "label": run["label"],
                "report_runs": " ".join(key for key, r in replay.by_key.items() if r is run),
                "optimizer": run["optimizer"],
                "batch_norm": run["batch_norm"],
                "epochs": replay.epochs,
                "published_test_accuracy": "" if published is None else published,
                "test_accuracy": round(train_mode, 4),
                "difference": "" if published is None else round(train_mode - published, 4),
                "test_accuracy_eval_mode": round(eval_mode, 4),
                "eval_minus_training": round(eval_mode - train_mode, 4),
                "within_tolerance": run["within_tolerance"],
                "run_dir": run["run_dir"],
            }
        )
    return rows
