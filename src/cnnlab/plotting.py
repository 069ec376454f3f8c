"""Figures shared by training, analyses and the report. Every figure is built here, saved by `atomic.write_figure`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402


def image_grid(
    images: np.ndarray | Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    cmap: str | Sequence[str] = "gray",
    colorbar: bool = False,
    cell: float = 1.4,
    suptitle: str | None = None,
    value_range: tuple[float, float] | None = None,
    panel_colorbars: bool | Sequence[bool] = False,
    lead: np.ndarray | None = None,
    lead_title: str | None = None,
) -> Figure:
    """A grid of 2-D images (an [N, H, W] array, or a list whose panels may differ in size).

    `value_range` puts all panels on one colour scale, with an optional shared `colorbar`; `cmap` and
    `panel_colorbars` may also be given per panel (an image beside its heatmap). `lead` is one more image drawn in its
    own column left of the grid, outside the shared scale (an input beside its maps).
    """
    panels = [np.asarray(image) for image in images]
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    cmaps = [cmap] * n if isinstance(cmap, str) else list(cmap)
    bars = [panel_colorbars] * n if isinstance(panel_colorbars, bool) else list(panel_colorbars)
    vmin, vmax = value_range if value_range is not None else (None, None)
    lead_cols = 0 if lead is None else 1
    width = cell * (ncols + lead_cols) * (1.25 if any(bars) else 1) + (0.8 if colorbar else 0)
    fig = plt.figure(figsize=(width, cell * nrows + 0.4 + (0.3 if suptitle else 0)), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols + lead_cols)
    if lead is not None:
        lead_ax = fig.add_subplot(grid[:, 0])
        lead_ax.imshow(np.asarray(lead), cmap="gray")
        lead_ax.set_axis_off()
        lead_ax.set_title(lead_title or "", fontsize=9)
    axes = [fig.add_subplot(grid[i // ncols, lead_cols + i % ncols]) for i in range(nrows * ncols)]
    mappable = None
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        mappable = ax.imshow(panels[i], cmap=cmaps[i], vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        if bars[i]:
            fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04, format=ScalarFormatter(useOffset=False))
    if colorbar and mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=0.8, format=ScalarFormatter(useOffset=False))
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def value_curves(
    curves: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, title: str | None = None, ncols: int = 1
) -> Figure:
    """One line per labelled series of values on shared axes (e.g. a logit over the iterations of an ascent)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (label, values) in enumerate(curves.items()):
        ax.plot(np.arange(1, len(values) + 1), values, color=f"C{i % 10}", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=ncols)
    fig.tight_layout()
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix") -> Figure:
    """An annotated heatmap: rows are true classes, columns predicted ones."""
    import seaborn as sns  # here, not at the top: it pulls in scipy.stats, over a second of every command's start-up

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, cbar=True, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def lr_sensitivity(
    series: Mapping[str, Sequence[tuple[float, float, float | None]]],
    marked_lr: float | None = None,
    title: str | None = None,
) -> Figure:
    """Test accuracy against learning rate (log axis): one line per optimizer of (lr, mean, std) points, std as
    error bars."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, points) in enumerate(series.items()):
        lrs, means, stds = zip(*sorted(points))
        ax.errorbar(lrs, means, yerr=[s or 0.0 for s in stds], marker="o", capsize=3, color=f"C{i % 10}", label=label)
    if marked_lr is not None:
        ax.axvline(marked_lr, color="gray", ls=":", label=f"lr {marked_lr:g}")
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate",
        ylabel="test accuracy (%)",
        title=title or "learning-rate sensitivity (mean ± std over seeds)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
