"""`attributions`: which pixels the true class's score depends on, by Captum's Saliency, Integrated Gradients and
Occlusion, with two checks of whether the maps say anything about the model.

- The model-parameter randomisation test (Adebayo et al. 2018): the same method on the same network with freshly
  initialised weights; a map that barely changes (Spearman rank correlation near 1) explains the image, not the model.
- Captum's infidelity (Yeh et al. 2019): how well attribution times a small noise perturbation predicts the change of
  the output; lower is better.

Every method explains `LoadedRun.classifier` (pixel units, normalisation inside), for the true class's logit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Occlusion, Saliency
from captum.metrics import infidelity
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from torch import Tensor, nn

from cnnlab.analysis.captum_warnings import input_gradient_warnings_off
from cnnlab.analysis.loading import LoadedRun
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import names_from, pixel_value, positive_int, seed
from cnnlab.errors import ConfigError
from cnnlab.plotting import image_grid

METHODS = ("saliency", "integrated_gradients", "occlusion")


@dataclass(frozen=True, kw_only=True)
class Attributions:
    """Checked settings. Occlusion slides a `occlusion_size` square of `fill` by `occlusion_stride`; Integrated
    Gradients integrates from an all-`fill` baseline in `ig_steps` steps."""

    methods: tuple[str, ...]
    images: int
    ig_steps: int
    occlusion_size: int
    occlusion_stride: int
    fill: float
    noise: float
    perturbations: int
    seed: int


def check_attributions_settings(settings: Mapping[str, Any]) -> tuple[Attributions, str]:
    s = Attributions(
        methods=names_from("methods", settings["methods"], METHODS),
        images=positive_int("images", settings["images"]),
        ig_steps=positive_int("ig_steps", settings["ig_steps"]),
        occlusion_size=positive_int("occlusion_size", settings["occlusion_size"]),
        occlusion_stride=positive_int("occlusion_stride", settings["occlusion_stride"]),
        fill=pixel_value("fill", settings["fill"]),
        noise=pixel_value("noise", settings["noise"]),
        perturbations=positive_int("perturbations", settings["perturbations"]),
        seed=seed("seed", settings["seed"]),
    )
    return s, f"n{s.images}-ig{s.ig_steps}-occ{s.occlusion_size}s{s.occlusion_stride}-fill{s.fill:g}-seed{s.seed}"


def attribute(model: nn.Module, method: str, x: Tensor, y: Tensor, s: Attributions) -> Tensor:
    """[N, C, H, W] attributions of the true class's logit to each pixel."""
    with input_gradient_warnings_off():
        if method == "saliency":
            return Saliency(model).attribute(x, target=y, abs=False)
        if method == "integrated_gradients":
            return IntegratedGradients(model).attribute(x, baselines=s.fill, target=y, n_steps=s.ig_steps)
    window = (x.shape[1], s.occlusion_size, s.occlusion_size)
    stride = (x.shape[1], s.occlusion_stride, s.occlusion_stride)
    return Occlusion(model).attribute(x, window, strides=stride, baselines=s.fill, target=y, perturbations_per_eval=256)


def randomised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of `model` with every layer's parameters drawn afresh (its own initialisation), in eval mode."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if module is not fresh and callable(reset := getattr(module, "reset_parameters", None)):
            reset()
    return fresh.eval()


def rank_correlation(a: Tensor, b: Tensor) -> list[float]:
    """Per image, Spearman's rank correlation of the absolute attributions (sign flips are not a change of map)."""
    rows = zip(a.abs().flatten(1).cpu().numpy(), b.abs().flatten(1).cpu().numpy())
    return [float(np.nan_to_num(spearmanr(u, v).statistic)) for u, v in rows]


def noise_perturbation(scale: float) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Infidelity's perturbation: Gaussian noise of std `scale`, kept inside the pixel range."""

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        noisy = (inputs + scale * torch.randn_like(inputs)).clamp(0, 1)
        return inputs - noisy, noisy

    return perturb


def method_results(model: nn.Module, x: Tensor, y: Tensor, s: Attributions) -> tuple[dict[str, Tensor], dict]:
    """Each method's maps, and its randomisation-test correlation and infidelity (means over the images)."""
    shuffled = randomised(model, s.seed)
    maps, checks = {}, {}
    for method in s.methods:
        maps[method] = attribute(model, method, x, y, s).detach()
        correlation = rank_correlation(maps[method], attribute(shuffled, method, x, y, s).detach())
        torch.manual_seed(s.seed)
        infid = infidelity(
            model, noise_perturbation(s.noise), x, maps[method], target=y, n_perturb_samples=s.perturbations
        )
        checks[method] = {
            "randomisation_rank_correlation": float(np.mean(correlation)),
            "infidelity": float(infid.mean()),
        }
    return maps, checks


def maps_figure(x: Tensor, maps: Mapping[str, Tensor], titles: Sequence[str]) -> Figure:
    """A row per image: the image, then each method's map summed over channels."""
    panels, names, cmaps = [], [], []
    for i in range(len(x)):
        panels += [x[i, 0].cpu().numpy(), *(values[i].sum(0).cpu().numpy() for values in maps.values())]
        names += [titles[i], *(method.replace("_", " ") for method in maps)]
        cmaps += ["gray", *["RdBu_r"] * len(maps)]
    return image_grid(
        panels, names, ncols=1 + len(maps), cmap=cmaps, cell=2.2, suptitle="attributions to the true class"
    )


def outputs(loaded: LoadedRun, s: Attributions) -> Outputs:
    test = loaded.test
    if s.images > len(test):
        raise ConfigError(f"images={s.images} is out of range: the test set has {len(test)} images")
    x, y = test.x[: s.images], test.y[: s.images]
    maps, checks = method_results(loaded.classifier, x, y, s)
    classes = loaded.classes
    figure = maps_figure(x, maps, [f"actual {classes[int(label)]}" for label in y])
    arrays = {"images": x.cpu().numpy(), "labels": y.cpu().numpy()} | {m: v.cpu().numpy() for m, v in maps.items()}
    return Outputs({"attributions.png": figure}, {"attributions.npz": arrays}, {"checks": checks})


attributions = analysis("attributions", check_attributions_settings, outputs)


def occlusion_attribution(maps: Tensor, clean: Tensor, size: int, stride: int, side: int) -> Tensor:
    """cnnlab-occlusion's maps [N, rows, cols] (the true class's probability with the patch at each position) as
    Captum's Occlusion attributes them: each pixel gets the mean drop from `clean` [N] over the patches covering it.
    This is what lets `cnnlab-bench` and the tests hold the two implementations to the same numbers."""
    n, rows, cols = maps.shape
    drop = (clean[:, None, None] - maps).reshape(n, 1, rows * cols)
    ones = torch.ones(1, size * size, rows * cols, dtype=maps.dtype, device=maps.device)
    fold = lambda t: F.fold(t, (side, side), size, stride=stride)  # noqa: E731
    total = fold(drop.expand(n, size * size, rows * cols).contiguous())
    count = fold(ones)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
