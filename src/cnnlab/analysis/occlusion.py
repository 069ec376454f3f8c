"""`occlusion`: how the true class's probability drops as a grey patch slides over the image.

heatmap[i, j] is the softmax probability of the true class with the patch over rows i*s..i*s+k-1 and columns
j*s..j*s+k-1 (no transposition: the top-left of the map is the top-left of the image). Occluded copies are computed
in batches, for a SimpleCNN recomputing only what the patch changes (`occluders`);
`reference.occlusion_maps_reference` is the one-pass-per-position original.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnnlab.analysis.loading import LoadedRun
from cnnlab.analysis.occluders import occluder
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import positive_int
from cnnlab.errors import ConfigError
from cnnlab.plotting import image_grid


def map_side(image_side: int, size: int, stride: int) -> int:
    """Placements of a `size` patch fully inside a side of `image_side` pixels, `stride` apart."""
    return (image_side - size) // stride + 1


@torch.no_grad()
def occlusion_maps(
    model: nn.Module, images: Tensor, labels: Tensor, *, size: int, stride: int, fill: float, batch_size: int = 1024
) -> Tensor:
    """[N, rows, cols] true-class probabilities for images [N, C, H, W] in eval mode, `batch_size` copies per pass."""
    n, _, height, width = images.shape
    rows, cols = map_side(height, size, stride), map_side(width, size, stride)
    occlude = occluder(model, images, labels, size, fill)
    probs = torch.empty(n * rows * cols, device=images.device)
    for start in range(0, len(probs), batch_size):
        flat = torch.arange(start, min(start + batch_size, len(probs)), device=images.device)
        which, where = flat // (rows * cols), flat % (rows * cols)
        probs[flat] = occlude(which, where // cols * stride, where % cols * stride)
    return probs.view(n, rows, cols)


def check_sizes(sizes: Any, image_side: int) -> list[int]:
    if not isinstance(sizes, Sequence) or isinstance(sizes, str) or not sizes:
        raise ConfigError(f"sizes={sizes!r} must be a non-empty list of patch sizes")
    for size in sizes:
        positive_int("sizes", size)
        if size > image_side:
            raise ConfigError(f"sizes contains {size}, larger than the {image_side}-pixel image")
    return list(sizes)


@dataclass(frozen=True, kw_only=True)
class Occlusion:
    """Checked settings; the patch sizes are checked once the test set (and so the image side) is known."""

    stride: int
    images: int
    batch_size: int
    fill: int | float
    sizes: Any


def check_occlusion_settings(settings: Mapping[str, Any]) -> tuple[Occlusion, str]:
    """The settings checked before anything is loaded, so a bad one costs nothing, and their folder name."""
    stride = positive_int("stride", settings["stride"])
    n_images = positive_int("images", settings["images"])
    batch_size = positive_int("batch_size", settings["batch_size"])
    fill = settings["fill"]
    if isinstance(fill, bool) or not isinstance(fill, int | float) or not math.isfinite(fill):
        raise ConfigError(f"fill={fill!r} must be a finite number (a pixel value; images are in [0, 1])")
    checked = Occlusion(stride=stride, images=n_images, batch_size=batch_size, fill=fill, sizes=settings["sizes"])
    return checked, f"s{stride}-fill{fill:g}-n{n_images}"


@dataclass(frozen=True)
class Seen:
    """The unoccluded test images and what the model made of them."""

    images: Tensor
    labels: Tensor
    predicted: Tensor
    unoccluded: Tensor  # probability of the true class


def compute_maps(loaded: LoadedRun, s: Occlusion) -> tuple[Seen, dict[int, np.ndarray]]:
    """The first `s.images` test images as the model sees them, and their maps [N, rows, cols] by patch size."""
    test = loaded.test
    if s.images > len(test):
        raise ConfigError(f"images={s.images} is out of range: the test set has {len(test)} images")
    sizes = check_sizes(s.sizes, min(test.x.shape[-2:]))
    images, labels = test.x[: s.images], test.y[: s.images]
    with torch.no_grad():
        probs = loaded.classifier(images).softmax(dim=1)
    seen = Seen(images, labels, probs.argmax(dim=1), probs.gather(1, labels[:, None])[:, 0])
    maps = {}
    for size in sizes:
        heat = occlusion_maps(
            loaded.folded, images, labels, size=size, stride=s.stride, fill=float(s.fill), batch_size=s.batch_size
        )
        maps[size] = heat.cpu().numpy()
    return seen, maps


def map_figure(seen: Seen, heat: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Each image beside its map, titled with what the model predicted and the unoccluded probability."""
    n = len(seen.images)
    panels, titles = [], []
    for i in range(n):
        actual = classes[int(seen.labels[i])]
        panels += [seen.images[i, 0].cpu().numpy(), heat[i]]
        titles += [
            f"predicted {classes[int(seen.predicted[i])]} / actual {actual}",
            f"p({actual}) with the patch\nunoccluded {float(seen.unoccluded[i]):.4f}",
        ]
    return image_grid(
        panels,
        titles,
        ncols=2,
        cmap=["gray", "viridis"] * n,
        panel_colorbars=[False, True] * n,
        cell=2.6,
        suptitle=title,
    )


def outputs(loaded: LoadedRun, s: Occlusion) -> Outputs:
    """The maps, a figure per patch size, the numbers behind them and each image's key numbers."""
    seen, maps = compute_maps(loaded, s)
    classes = loaded.classes
    figures = {
        f"occlusion_k{size}.png": map_figure(
            seen, heat, classes, f"occlusion {size}x{size}, stride {s.stride}, fill {s.fill:g}"
        )
        for size, heat in maps.items()
    }
    arrays = {
        **{f"maps_k{size}": heat for size, heat in maps.items()},
        "images": seen.images.cpu().numpy(),
        "labels": seen.labels.cpu().numpy(),
        "predicted": seen.predicted.cpu().numpy(),
        "unoccluded": seen.unoccluded.cpu().numpy(),
    }
    results = {
        "map_shapes": {f"k{size}": list(heat.shape[1:]) for size, heat in maps.items()},
        "images": [
            {
                "index": i,
                "actual": classes[int(seen.labels[i])],
                "predicted": classes[int(seen.predicted[i])],
                "unoccluded_probability": float(seen.unoccluded[i]),
                "min_probability": {f"k{size}": float(heat[i].min()) for size, heat in maps.items()},
            }
            for i in range(s.images)
        ],
    }
    return Outputs(figures, {"maps.npz": arrays}, results)


occlusion = analysis("occlusion", check_occlusion_settings, outputs)
