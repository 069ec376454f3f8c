"""`filters`: the learned 3x3 kernels of conv1 and/or conv2, on one colour scale per figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn

from cnnlab.analysis.loading import LoadedRun
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import one_of
from cnnlab.errors import ConfigError
from cnnlab.plotting import image_grid

LAYERS = ("conv1", "conv2", "both")


def kernels(conv: nn.Conv2d, in_channel: int | str) -> np.ndarray:
    """[out, kh, kw] kernels seen from one input channel, or for `in_channel="all"` one mosaic image with a row per
    output channel and a column per input channel (NaN gaps between kernels)."""
    weight = conv.weight.detach().float().cpu().numpy()
    if in_channel != "all":
        return weight[:, in_channel]
    n_out, n_in, kh, kw = weight.shape
    mosaic = np.full((n_out * (kh + 1) - 1, n_in * (kw + 1) - 1), np.nan, dtype=np.float32)
    for o in range(n_out):  # 32 x 32 small copies: no figure axes per kernel
        for i in range(n_in):
            mosaic[o * (kh + 1) : o * (kh + 1) + kh, i * (kw + 1) : i * (kw + 1) + kw] = weight[o, i]
    return mosaic[None]


def check_filters_settings(settings: Mapping[str, Any]) -> tuple[tuple[str, int | str], str]:
    """The layer(s) and conv2 input channel, and their folder name (conv1 has one input channel: no suffix)."""
    layer = one_of("layer", settings["layer"], LAYERS)
    in_channel = settings["in_channel"]
    if in_channel != "all" and (isinstance(in_channel, bool) or not isinstance(in_channel, int) or in_channel < 0):
        raise ConfigError(f"in_channel={in_channel!r} must be an input channel index >= 0 or 'all'")
    return (layer, in_channel), "conv1" if layer == "conv1" else f"{layer}-in{in_channel}"


def kernel_figure(name: str, panels: np.ndarray, channel: int | str) -> Figure:
    """The kernels on one colour scale centred on zero: a panel per output channel, or the one mosaic for "all"."""
    bound = float(np.nanmax(np.abs(panels)))
    if channel == "all":
        title = f"{name} kernels: rows = output channel, columns = input channel"
        return image_grid(
            panels, ncols=1, cmap="RdBu_r", value_range=(-bound, bound), colorbar=True, cell=9, suptitle=title
        )
    title = f"{name} kernels, input channel {channel} (one panel per output channel)"
    titles = [f"out {o}" for o in range(len(panels))]
    return image_grid(
        panels, titles, ncols=8, cmap="RdBu_r", value_range=(-bound, bound), colorbar=True, suptitle=title
    )


def outputs(loaded: LoadedRun, chosen: tuple[str, int | str]) -> Outputs:
    layer, in_channel = chosen
    names = ["conv1", "conv2"] if layer == "both" else [layer]
    figures, arrays, shapes = {}, {}, {}
    for name in names:
        conv = loaded.model.layer(name)
        channel = 0 if name == "conv1" else in_channel
        if channel != "all" and channel >= conv.in_channels:
            raise ConfigError(f"in_channel={channel} is out of range: {name} has {conv.in_channels} input channels")
        figures[f"{name}.png"] = kernel_figure(name, kernels(conv, channel), channel)
        arrays[f"{name}_weight"] = conv.weight.detach().cpu().numpy()
        arrays[f"{name}_bias"] = conv.bias.detach().cpu().numpy()
        shapes[name] = list(conv.weight.shape)
    return Outputs(figures, {"kernels.npz": arrays}, {"weight_shapes": shapes})


filters = analysis("filters", check_filters_settings, outputs)
