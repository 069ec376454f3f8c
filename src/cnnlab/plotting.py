"""Figures shared by training, analyses and the report. Every figure is built here, saved by `atomic.write_figure`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    shared_scale: bool = False,
    colorbar: bool = False,
    cell: float = 1.4,
    suptitle: str | None = None,
) -> Figure:
    """A grid of 2-D images [N, H, W]. `shared_scale` puts all panels on one colour scale (with an optional colorbar)."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + (0.8 if colorbar else 0), cell * nrows + 0.4), squeeze=False)
    vmin, vmax = (float(images.min()), float(images.max())) if shared_scale else (None, None)
    mappable = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            mappable = ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if colorbar and mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], title: str | None = None) -> Figure:
    """Train/validation loss and validation accuracy by epoch; one line per labelled run, shared axes."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i % 10}"
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["train_loss"] for h in history], color=color, marker="o", label=f"{label} train")
        ax_loss.plot(epochs, [h["val_loss"] for h in history], color=color, marker="s", ls="--", label=f"{label} val")
        ax_acc.plot(epochs, [h["val_accuracy"] for h in history], color=color, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: validation)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix") -> Figure:
    """An annotated heatmap: rows are true classes, columns predicted ones."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, cbar=True, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def lr_sensitivity(
    series: Mapping[str, Sequence[tuple[float, float, float | None]]], marked_lr: float | None = None, title: str | None = None
) -> Figure:
    """Test accuracy against learning rate (log axis): one line per optimizer of (lr, mean, std) points, std as error bars."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, points) in enumerate(series.items()):
        lrs, means, stds = zip(*sorted(points))
        ax.errorbar(lrs, means, yerr=[s or 0.0 for s in stds], marker="o", capsize=3, color=f"C{i % 10}", label=label)
    if marked_lr is not None:
        ax.axvline(marked_lr, color="gray", ls=":", label=f"lr {marked_lr:g}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="test accuracy (%)", title=title or "learning-rate sensitivity (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
