"""Gradient ascent on the input of a frozen model: the core of the untargeted and targeted adversarial images.

Every sample of a batch climbs its own objective at once (in eval mode samples do not interact), and only the input
gets a gradient. `reference.py` holds the one-image-at-a-time original these must agree with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True, kw_only=True)
class AscentSettings:
    """How an input climbs: `steps` times X <- clamp(X + clamp(step * gradient, -eps, eps), lo, hi)."""

    steps: int
    step: float
    eps: float
    lo: float
    hi: float

    def moved(self, x: Tensor, grad: Tensor) -> Tensor:
        """One step up `grad` from `x` (both left unchanged)."""
        return (x + (self.step * grad).clamp_(-self.eps, self.eps)).clamp_(self.lo, self.hi)


@dataclass(frozen=True)
class Ascent:
    images: Tensor  # [N, C, H, W] after the last step, within [lo, hi]
    logits: Tensor  # [steps, N] each sample's target logit before each step


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode with no parameter gradients; its flags and mode are restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)
        model.train(was_training)


def noise(count: int, shape: tuple[int, ...], *, mean: float, std: float, lo: float, hi: float, seed: int) -> Tensor:
    """Seeded starting images N(mean, std) clipped to [lo, hi], drawn on the CPU so every device starts alike."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn((count, *shape), generator=generator) * std + mean).clamp_(lo, hi)


def ascend(
    model: nn.Module,
    init: Tensor,
    targets: Tensor,
    *,
    settings: AscentSettings,
    penalty: Callable[[Tensor], Tensor] | None = None,
) -> Ascent:
    """Each image climbs objective = logit_target(X) - penalty(X) (see AscentSettings for the step)."""
    x = init.clone()
    curve = torch.empty(settings.steps, len(x), device=x.device)
    rows = torch.arange(len(x), device=x.device)
    with frozen(model):
        for i in range(settings.steps):
            x.requires_grad_(True)
            logit = model(x)[rows, targets]
            objective = logit if penalty is None else logit - penalty(x)
            (grad,) = torch.autograd.grad(objective.sum(), x)
            curve[i] = logit.detach()
            x = settings.moved(x.detach(), grad)
    return Ascent(x, curve)


def mean_squared_error(images: Tensor, references: Tensor) -> Tensor:
    """Per-image mean over pixels of the squared difference."""
    return (images - references).pow(2).flatten(1).mean(dim=1)


def grow_untargeted(model: nn.Module, init: Tensor, targets: Tensor, *, settings: AscentSettings) -> Ascent:
    """Images the model takes for `targets`, grown from `init` by ascending each target's logit."""
    return ascend(model, init, targets, settings=settings)


def grow_targeted(
    model: nn.Module, init: Tensor, targets: Tensor, *, sources: Tensor, beta: float, settings: AscentSettings
) -> Ascent:
    """Images that stay close to `sources` but are taken for `targets`: ascend logit_t(X) - beta * MSE(X, source)."""
    return ascend(model, init, targets, settings=settings, penalty=lambda x: beta * mean_squared_error(x, sources))
