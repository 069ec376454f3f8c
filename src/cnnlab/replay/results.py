"""Reading and comparing replay results: the stable interface for the report and for people.

load_replay(replay_dir, epochs=5) -> the parsed replay-e<epochs>.json, or None when there is no such replay
{"protocol": "notebook", "epochs": 5, "device": "cpu", "threads": 1, "torch": "2.14.1", "updated_at": ...,
 "runs": {"sgd": RUN, "momentum": RUN, ...}}        # keys in the notebook's order, those replayed so far
RUN = {"run_dir", "label", "optimizer", "batch_norm", "adaptive",
       "epochs": [{"epoch", "train_loss", "val_loss", "val_accuracy",
                   "published_train_loss", "published_val_loss", "published_val_accuracy"}, ...],
       "test_accuracy"             # training mode, as the notebook evaluated (its published protocol)
       "test_accuracy_eval_mode"   # the same final weights in eval mode (batch norm's running statistics)
       "published_test_accuracy", "within_tolerance"}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CheckpointError
from cnnlab.replay.published import (
    ADAPTIVE_TEST_TOLERANCE,
    NOTEBOOK_RUNS,
    TEST_TOLERANCE,
    TRAIN_LOSS_TOLERANCE,
    VAL_ACCURACY_TOLERANCE,
    PublishedRun,
)

METRIC_NAMES = ("train_loss", "val_loss", "val_accuracy")


def summary_path(replay_dir: str | Path, epochs: int = 5) -> Path:
    return Path(replay_dir) / f"replay-e{epochs}.json"


def load_replay(replay_dir: str | Path, epochs: int = 5) -> dict[str, Any] | None:
    """The replay of `epochs`-epoch runs under `replay_dir` (normally `<paths.output_dir>/replay`), or None."""
    path = summary_path(replay_dir, epochs)
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is unreadable ({type(err).__name__}); delete it or replay with overwrite=true"
        ) from None
    order = [run.key for run in NOTEBOOK_RUNS]
    summary["runs"] = {key: summary["runs"][key] for key in sorted(summary.get("runs", {}), key=order.index)}
    return summary


def compare_run(
    run: PublishedRun, history: Sequence[Mapping[str, Any]], test_accuracy: float, eval_accuracy: float
) -> dict[str, Any]:
    """Replayed beside published, per epoch and test, and whether the replay is within the acceptance tolerances.

    Per-epoch values are held for SGD, Momentum and SGD+BN only: adaptive optimizers amplify the notebook's GPU
    rounding. The test accuracy is compared only after as many epochs as the notebook ran."""
    epochs = []
    for h in history:
        row = {"epoch": h["epoch"], **{name: h[name] for name in METRIC_NAMES}}
        if h["epoch"] <= len(run.epochs):
            row.update({f"published_{name}": value for name, value in zip(METRIC_NAMES, run.epochs[h["epoch"] - 1])})
        epochs.append(row)
    within = True
    if not run.adaptive:
        within = all(
            abs(row["train_loss"] - row["published_train_loss"]) <= TRAIN_LOSS_TOLERANCE
            and abs(row["val_accuracy"] - row["published_val_accuracy"]) <= VAL_ACCURACY_TOLERANCE + 1e-9
            for row in epochs
            if "published_train_loss" in row
        )
    complete = len(history) == len(run.epochs)
    if complete:
        tolerance = ADAPTIVE_TEST_TOLERANCE if run.adaptive else TEST_TOLERANCE
        within = within and abs(test_accuracy - run.test_accuracy) <= tolerance + 1e-9
    return {
        "label": run.label,
        "optimizer": run.optimizer,
        "batch_norm": run.batch_norm,
        "adaptive": run.adaptive,
        "epochs": epochs,
        "test_accuracy": test_accuracy,
        "test_accuracy_eval_mode": eval_accuracy,
        "published_test_accuracy": run.test_accuracy if complete else None,
        "within_tolerance": within,
    }


def format_comparison(summary: Mapping[str, Any]) -> str:
    """The published-vs-replayed table printed by cnnlab-replay: one line per epoch and one for the test set."""
    lines = [
        f"notebook replay, {summary['epochs']} epochs, {summary['device']}, {summary['threads']} threads, "
        f"torch {summary['torch']}",
        f"{'run':<9}{'epoch':>6}  {'train loss: published replayed diff':>35}  "
        f"{'val loss: published replayed diff':>33}"
        f"  {'val acc %: published replayed diff':>34}",
    ]

    def triple(published: float | None, replayed: float, digits: int) -> str:
        if published is None:
            return f"{'-':>9} {replayed:>9.{digits}f} {'':>9}"
        return f"{published:>9.{digits}f} {replayed:>9.{digits}f} {replayed - published:>+9.{digits}f}"

    for entry in summary["runs"].values():
        for row in entry["epochs"]:
            lines.append(
                f"{entry['label']:<9}{row['epoch']:>6}  "
                f"{triple(row.get('published_train_loss'), row['train_loss'], 4):>35}"
                f"  {triple(row.get('published_val_loss'), row['val_loss'], 4):>33}"
                f"  {triple(row.get('published_val_accuracy'), row['val_accuracy'], 2):>34}"
            )
        verdict = "within tolerance" if entry["within_tolerance"] else "OUTSIDE tolerance"
        lines.append(
            f"{entry['label']:<9}{'test':>6}  {'':>35}  {'':>33}  "
            f"{triple(entry['published_test_accuracy'], entry['test_accuracy'], 2):>34}"
            f"  eval mode {entry['test_accuracy_eval_mode']:.2f}  {verdict}"
        )
    return "\n".join(lines)
