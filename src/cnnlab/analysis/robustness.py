"""`robustness`: test accuracy under Captum's FGSM and PGD attacks, over a list of L-inf budgets in pixel units.

The attacks run on `LoadedRun.classifier`, which takes images in [0, 1] with the run's normalisation inside it, so
an epsilon of 0.1 means a tenth of the pixel range for every run; the attacks clamp pixels to [0, 1]. The images are a
fixed subset of the test set drawn with `subset_seed`, so every run of a comparison is attacked on the same images.
At epsilon 0 no attack runs: the accuracy is the clean accuracy on those images, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import FGSM, PGD
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnnlab.analysis.captum_warnings import input_gradient_warnings_off
from cnnlab.analysis.loading import LoadedRun
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import boolean, names_from, positive_int, seed
from cnnlab.errors import ConfigError

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True, kw_only=True)
class Robustness:
    """Checked settings. `step_size` None takes PGD's usual 2.5 * epsilon / steps (Madry et al. 2018)."""

    attacks: tuple[str, ...]
    epsilons: tuple[float, ...]
    steps: int
    step_size: float | None
    random_start: bool
    images: int | None  # None: the whole test set
    subset_seed: int
    batch_size: int


def _epsilons(value: Any) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"epsilons={value!r} must be a non-empty list of numbers in [0, 1] (pixel units)")
    for eps in value:
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 <= eps <= 1:
            raise ConfigError(f"epsilons contains {eps!r}; each must be a number in [0, 1] (pixel units)")
    return tuple(sorted({float(e) for e in value}))


def _images(value: Any) -> int | None:
    if value == "all":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"images={value!r} must be a positive number of test images or 'all'")
    return value


def check_robustness_settings(settings: Mapping[str, Any]) -> tuple[Robustness, str]:
    """The settings checked before anything is loaded, and their folder name."""
    step_size = settings["step_size"]
    if step_size is not None and (
        isinstance(step_size, bool) or not isinstance(step_size, int | float) or not 0 < step_size <= 1
    ):
        raise ConfigError(f"step_size={step_size!r} must be a number in (0, 1] (pixel units) or null for 2.5*eps/steps")
    s = Robustness(
        attacks=names_from("attacks", settings["attacks"], ATTACKS),
        epsilons=_epsilons(settings["epsilons"]),
        steps=positive_int("steps", settings["steps"]),
        step_size=None if step_size is None else float(step_size),
        random_start=boolean("random_start", settings["random_start"]),
        images=_images(settings["images"]),
        subset_seed=seed("subset_seed", settings["subset_seed"]),
        batch_size=positive_int("batch_size", settings["batch_size"]),
    )
    size = "auto" if s.step_size is None else f"{s.step_size:g}"
    start = "-rs" if s.random_start else ""
    return s, f"pgd{s.steps}-ss{size}{start}-n{s.images or 'all'}-seed{s.subset_seed}"


def attacked_images(n_test: int, images: int | None, seed: int) -> Tensor:
    """The indices of the attacked test images: the same for every run given the same count and seed."""
    if images is None:
        return torch.arange(n_test)
    if images > n_test:
        raise ConfigError(f"images={images} is out of range: the test set has {n_test} images (or use images=all)")
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(seed))[:images].sort().values


def perturb(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float, s: Robustness) -> Tensor:
    """Adversarial copies of `x` within `eps` in L-inf, pixels in [0, 1] (Captum's FGSM or PGD)."""
    if eps == 0:
        return x
    loss = lambda out, target: F.cross_entropy(out, target, reduction="none")  # noqa: E731
    step = s.step_size if s.step_size is not None else 2.5 * eps / s.steps
    with input_gradient_warnings_off():
        if attack == "fgsm":
            return FGSM(model, loss, lower_bound=0.0, upper_bound=1.0).perturb(x, eps, y)
        return PGD(model, loss, lower_bound=0.0, upper_bound=1.0).perturb(
            x, eps, step, s.steps, y, random_start=s.random_start
        )


def attack_accuracy(model: nn.Module, x: Tensor, y: Tensor, s: Robustness) -> dict[str, list[float]]:
    """Accuracy (%) on `x` under each attack at each epsilon, in `s.batch_size` chunks; checks every perturbed
    image's budget and range, since a silent violation would make the numbers meaningless."""
    torch.manual_seed(s.subset_seed)  # PGD's random start: the same draw on every call
    correct = {a: [0] * len(s.epsilons) for a in s.attacks}
    for xb, yb in zip(x.split(s.batch_size), y.split(s.batch_size)):
        for attack in s.attacks:
            for i, eps in enumerate(s.epsilons):
                adv = perturb(model, xb, yb, attack, eps, s).detach()
                if (adv - xb).abs().max() > eps + 1e-6 or adv.min() < 0 or adv.max() > 1:
                    raise RuntimeError(f"{attack} at eps={eps} left the L-inf ball or [0, 1]")
                with torch.no_grad():
                    correct[attack][i] += int((model(adv).argmax(dim=1) == yb).sum())
    return {a: [100.0 * c / len(y) for c in counts] for a, counts in correct.items()}


def curve_figure(epsilons: Sequence[float], accuracy: Mapping[str, Sequence[float]], title: str) -> Figure:
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for attack, values in accuracy.items():
        ax.plot(epsilons, values, marker="o", label=attack.upper())
    ax.set(xlabel="epsilon (L-inf, pixel units)", ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def outputs(loaded: LoadedRun, s: Robustness) -> Outputs:
    test = loaded.test
    index = attacked_images(len(test), s.images, s.subset_seed).to(test.x.device)
    x, y = test.x[index], test.y[index]
    accuracy = attack_accuracy(loaded.classifier, x, y, s)
    steps = f"PGD-{s.steps}{' random start' if s.random_start else ''}"
    title = f"{len(y)} test images, FGSM and {steps}"
    results = {
        "epsilons": list(s.epsilons),
        "accuracy": accuracy,
        "images_attacked": len(y),
        "clean_accuracy": accuracy[s.attacks[0]][0] if s.epsilons[0] == 0 else None,
    }
    arrays = {"epsilons": np.array(s.epsilons), "indices": index.cpu().numpy()}
    arrays |= {f"accuracy_{a}": np.array(v) for a, v in accuracy.items()}
    return Outputs({"robustness.png": curve_figure(s.epsilons, accuracy, title)}, {"robustness.npz": arrays}, results)


robustness = analysis("robustness", check_robustness_settings, outputs)
