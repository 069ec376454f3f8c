"""`occlusion`: how the true class's probability drops as a grey patch slides over the image.

heatmap[i, j] is the softmax probability of the true class with the patch over rows i*s..i*s+k-1 and columns
j*s..j*s+k-1 (no transposition: the top-left of the map is the top-left of the image). Occluded copies are computed
in batches, for a SimpleCNN recomputing only what the patch changes (`occluders`);
`reference.occlusion_maps_reference` is the one-pass-per-position original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.analysis.loading import checkpoint_path, load_run
from cnnlab.analysis.occluders import occluder
from cnnlab.analysis.results import AnalysisResult, Outputs, analysis_dir, merge_options, run_cached
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


def occlusion(
    run_dir: Path, options: Mapping[str, Any], device: str = "auto", data_dir: Path | None = None
) -> AnalysisResult:
    settings = merge_options("occlusion", options)
    force = settings.pop("force")
    stride = positive_int("stride", settings["stride"])
    n_images = positive_int("images", settings["images"])
    batch_size = positive_int("batch_size", settings["batch_size"])
    fill = settings["fill"]
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        raise ConfigError(f"fill={fill!r} must be a number (a pixel value; images are in [0, 1])")
    checkpoint = checkpoint_path(run_dir)
    out_dir = analysis_dir(checkpoint, "occlusion", f"s{stride}-fill{fill:g}-n{n_images}")

    def compute() -> Outputs:
        loaded = load_run(checkpoint, device, data_dir)
        test = loaded.test
        if n_images > len(test):
            raise ConfigError(f"images={n_images} is out of range: the test set has {len(test)} images")
        sizes = check_sizes(settings["sizes"], min(test.x.shape[-2:]))
        images, labels = test.x[:n_images], test.y[:n_images]
        with torch.no_grad():
            probs = loaded.classifier(images).softmax(dim=1)
        predicted, unoccluded = probs.argmax(dim=1), probs.gather(1, labels[:, None])[:, 0]
        classes = loaded.classes
        figures, maps = {}, {}
        for size in sizes:
            heat = occlusion_maps(
                loaded.folded, images, labels, size=size, stride=stride, fill=float(fill), batch_size=batch_size
            ).cpu()
            maps[f"k{size}"] = heat.numpy()
            panels, titles = [], []
            for i in range(n_images):
                panels += [images[i, 0].cpu().numpy(), heat[i].numpy()]
                titles += [
                    f"predicted {classes[int(predicted[i])]} / actual {classes[int(labels[i])]}",
                    f"p({classes[int(labels[i])]}) with the patch\nunoccluded {float(unoccluded[i]):.4f}",
                ]
            fig = image_grid(
                panels,
                titles,
                ncols=2,
                cmap=["gray", "viridis"] * n_images,
                panel_colorbars=[False, True] * n_images,
                cell=2.6,
                suptitle=f"occlusion {size}x{size}, stride {stride}, fill {fill:g}",
            )
            figures[f"occlusion_k{size}.png"] = fig
        arrays = {
            **{f"maps_{k}": v for k, v in maps.items()},
            "images": images.cpu().numpy(),
            "labels": labels.cpu().numpy(),
            "predicted": predicted.cpu().numpy(),
            "unoccluded": unoccluded.cpu().numpy(),
        }
        results = {
            "map_shapes": {k: list(v.shape[1:]) for k, v in maps.items()},
            "images": [
                {
                    "index": i,
                    "actual": classes[int(labels[i])],
                    "predicted": classes[int(predicted[i])],
                    "unoccluded_probability": float(unoccluded[i]),
                    "min_probability": {k: float(v[i].min()) for k, v in maps.items()},
                }
                for i in range(n_images)
            ],
        }
        return Outputs(figures, {"maps.npz": arrays}, results)

    return run_cached("occlusion", checkpoint, out_dir, settings, force, compute)
