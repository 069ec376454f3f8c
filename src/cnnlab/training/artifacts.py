"""The files a finished run leaves for people: history, classification report, confusion matrix and figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import write_figure, write_text
from cnnlab.data import Split

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "epoch_time_s", "images_per_s")


def draws_figures(config: Mapping[str, Any]) -> Any:
    """A config's `trainer.figures` as given (checked by check_train_settings); a run recorded before the setting
    existed drew its figures."""
    return config.get("trainer", {}).get("figures", True)


def history_summary(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The headline figures metrics.json keeps beside the full history."""
    return {
        "best_val_accuracy": max(h["val_accuracy"] for h in history),
        "final_val_accuracy": history[-1]["val_accuracy"],
        "images_per_s": round(float(np.median([h["images_per_s"] for h in history])), 1),
    }


def write_history(run_dir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(run_dir / "history.csv", buffer.getvalue())


def write_test_results(
    run_dir: Path,
    test: Split,
    predictions: np.ndarray,
    classes: Sequence[str],
    title: str,
    seed: int,
    *,
    figures: bool = True,
) -> dict[str, Any]:
    """Classification report, confusion matrix (CSV, and with `figures` a heatmap) and a grid of 12 random test
    predictions (with `figures`)."""
    # imported here, once training is over: scikit-learn (with scipy) adds ~100 MB to a run's peak memory otherwise
    from sklearn.metrics import classification_report, confusion_matrix

    y_true = test.y.cpu().numpy()
    labels = list(range(len(classes)))
    options = {"labels": labels, "target_names": list(classes), "zero_division": 0}
    write_text(run_dir / "classification_report.txt", classification_report(y_true, predictions, digits=4, **options))
    report = classification_report(y_true, predictions, output_dict=True, **options)

    matrix = confusion_matrix(y_true, predictions, labels=labels)
    rows = ["true\\predicted," + ",".join(classes)] + [
        f"{name}," + ",".join(map(str, row)) for name, row in zip(classes, matrix)
    ]
    write_text(run_dir / "confusion_matrix.csv", "\n".join(rows) + "\n")
    if not figures:
        return report
    # matplotlib is imported where a run draws, not by every process that imports the engine (a third of a second)
    from cnnlab.plotting import confusion_heatmap, image_grid

    write_figure(
        run_dir / "confusion_matrix.png", confusion_heatmap(matrix, classes, title=f"{title}: test confusion matrix")
    )

    chosen = np.random.default_rng(seed).choice(len(y_true), size=min(12, len(y_true)), replace=False)
    # two lines, so long class names (Fashion-MNIST's "T-shirt/top") do not run into the next panel
    titles = [f"true {classes[y_true[i]]}\npred {classes[predictions[i]]}" for i in chosen]
    grid = image_grid(
        test.x[chosen, 0].cpu().numpy(), titles, ncols=6, cell=1.8, suptitle=f"{title}: random test images"
    )
    write_figure(run_dir / "predictions.png", grid)
    return report


def write_curves(run_dir: Path, history: Sequence[Mapping[str, Any]], title: str) -> None:
    from cnnlab.plotting import plt, training_curves

    write_figure(run_dir / "curves.png", training_curves({title: history}, title=title))
    plt.close("all")
