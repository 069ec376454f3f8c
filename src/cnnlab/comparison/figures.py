"""The comparison's figures: performance profiles (untuned and tuned side by side) and expected best validation
accuracy against the number of tuning trials, one panel per workload on shared axes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnnlab.comparison.stats import ExpectedMax, Profile
from cnnlab.plotting import plt


def _grid(panels: int, width: float, ylabel: str, **subplots: Any) -> tuple[Figure, np.ndarray]:
    """Two panels a row, the unused ones hidden, the y label on each row's first."""
    cols = min(panels, 2)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.6 * rows), squeeze=False, **subplots)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(ylabel)
    return fig, axes


def profile_figure(panels: Mapping[str, Profile]) -> Figure:
    """One panel per profile (e.g. "untuned, target 1"; untuned and tuned side by side): for each optimizer the
    fraction of workloads on which its time to target is within τ of the best optimizer's, a step function of τ on a
    log axis."""
    fig, axes = _grid(len(panels), 5.4, "fraction of workloads", sharey=True)
    for ax, (title, profile) in zip(axes.flat, panels.items()):
        for optimizer in profile.optimizers:
            ax.step(profile.taus, profile.rho[optimizer], where="post", label=optimizer, linewidth=1.8)
        ax.set_xscale("log")
        ax.set_xlim(1, profile.taus[-1])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("τ (within τ × the best optimizer's time)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def budget_figure(curves: Mapping[str, Mapping[str, ExpectedMax]], level: str) -> Figure:
    """`curves[workload][optimizer]`: the expected best validation accuracy after k trials with its bootstrap band."""
    # each panel its own accuracy axis: MNIST's ~99% and Fashion-MNIST's ~90% would flatten each other's curves
    fig, axes = _grid(len(curves), 5.2, f"expected best val. accuracy % ({level} band)")
    for ax, workload in zip(axes.flat, curves):
        for optimizer, curve in curves[workload].items():
            (line,) = ax.plot(curve.k, curve.mean, marker="o", markersize=3, label=optimizer)
            ax.fill_between(curve.k, curve.low, curve.high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(workload, fontsize=10)
        ax.set_xlabel("tuning trials k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
