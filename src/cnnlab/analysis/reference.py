"""The original notebook's slow algorithms, kept as plain loops to check the batched versions against (and time them).

Occlusion runs one forward pass per patch position; the adversarial ascent treats one image at a time and, as the
notebook did, calls `backward()` with parameter gradients switched on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.analysis.ascent import AscentSettings, mean_squared_error
from cnnlab.analysis.occlusion import map_side


@torch.no_grad()
def occlusion_maps_reference(
    model: nn.Module, image: Tensor, label: int, *, size: int, stride: int, fill: float
) -> Tensor:
    """[rows, cols] true-class probabilities for one image [C, H, W], one forward pass per patch position."""
    model.eval()
    _, height, width = image.shape
    heat = torch.empty(map_side(height, size, stride), map_side(width, size, stride))
    for i in range(heat.shape[0]):
        for j in range(heat.shape[1]):
            copy = image.clone()
            copy[:, i * stride : i * stride + size, j * stride : j * stride + size] = fill
            heat[i, j] = model(copy[None]).softmax(dim=1)[0, label]
    return heat


def grow_untargeted_reference(
    model: nn.Module, init: Tensor, target: int, *, settings: AscentSettings
) -> tuple[Tensor, Tensor]:
    """One image [C, H, W] grown towards `target`; returns the image and its logit curve [steps]."""
    return grow_targeted_reference(model, init, target, source=None, beta=0.0, settings=settings)


def grow_targeted_reference(
    model: nn.Module, init: Tensor, target: int, *, source: Tensor | None, beta: float, settings: AscentSettings
) -> tuple[Tensor, Tensor]:
    """One image [C, H, W] grown towards `target` while kept near `source` (no penalty when None); returns the image
    and its logit curve [steps]."""
    model.eval()
    x = init.clone()[None].requires_grad_(True)
    curve = torch.empty(settings.steps)
    for i in range(settings.steps):
        model.zero_grad()
        logit = model(x)[0, target]
        objective = logit if source is None else logit - beta * mean_squared_error(x, source[None])[0]
        objective.backward()
        curve[i] = logit.item()
        with torch.no_grad():
            x.copy_(settings.moved(x, x.grad))
        x.grad.zero_()
    model.zero_grad()
    return x.detach()[0], curve
