"""`activations`: a conv layer's feature maps for one test image, captured by a forward hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.analysis.loading import LoadedRun, predict
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import one_of
from cnnlab.errors import ConfigError
from cnnlab.plotting import image_grid

LAYERS = ("conv1", "conv2")


@torch.no_grad()
def feature_maps(classifier: nn.Module, layer: nn.Module, image: Tensor) -> Tensor:
    """`layer`'s output [C, H, W] (before batch norm and ReLU) when `classifier` sees one image [1, H, W].

    The hook is removed and the train/eval mode restored whatever happens, so the model is left as it was.
    """
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    was_training = classifier.training
    try:
        classifier.eval()
        classifier(image.unsqueeze(0))
    finally:
        handle.remove()
        classifier.train(was_training)
    return captured[0][0]


def check_activations_settings(settings: Mapping[str, Any]) -> tuple[tuple[str, int], str]:
    """The layer and image index, and their folder name; the index is checked against the test set once loaded."""
    layer = one_of("layer", settings["layer"], LAYERS)
    image = settings["image"]
    if isinstance(image, bool) or not isinstance(image, int) or image < 0:
        raise ConfigError(f"image={image!r} must be a test-image index >= 0")
    return (layer, image), f"{layer}-image{image}"


def outputs(loaded: LoadedRun, chosen: tuple[str, int]) -> Outputs:
    layer, index = chosen
    if index >= len(loaded.test):
        raise ConfigError(f"image={index!r} is out of range: the test set has images 0..{len(loaded.test) - 1}")
    image, label = loaded.test.x[index], int(loaded.test.y[index])
    maps = feature_maps(loaded.classifier, loaded.model.layer(layer), image)
    predicted, confidence = (float(v) for v in predict(loaded.classifier, image[None]))
    classes = loaded.classes
    fig = image_grid(
        maps.cpu().numpy(),
        [f"map {c}" for c in range(len(maps))],
        ncols=8,
        cmap="viridis",
        value_range=(float(maps.min()), float(maps.max())),
        colorbar=True,
        lead=image[0].cpu().numpy(),
        lead_title=f"test image {index}\nactual {classes[label]}",
        suptitle=f"{layer} feature maps (before ReLU), predicted {classes[int(predicted)]} ({confidence:.1%})",
    )
    arrays = {"image": image.cpu().numpy(), "maps": maps.cpu().numpy(), "label": label}
    results = {
        "layer": layer,
        "image": index,
        "label": classes[label],
        "predicted": classes[int(predicted)],
        "confidence": confidence,
        "map_shape": list(maps.shape),
    }
    return Outputs({"activations.png": fig}, {"activations.npz": arrays}, results)


activations = analysis("activations", check_activations_settings, outputs)
