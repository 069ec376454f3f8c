"""`adversarial`: images grown from noise that the model takes for a class.

`mode=untargeted` grows one "fooling" image per class; `mode=targeted` grows, for every source digit s and target
t != s, an image kept near the first test image of s (an MSE penalty weighted by `beta`) but classified as t.
Pixel ranges, step and iterations come from the preset (`adversarial_preset=input_domain|report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cnnlab import checks
from cnnlab.analysis.ascent import Ascent, AscentSettings, grow_targeted, grow_untargeted, mean_squared_error, noise
from cnnlab.analysis.loading import LoadedRun, predict
from cnnlab.analysis.results import Outputs, analysis
from cnnlab.checks import finite_number, non_negative_float, one_of, positive_float, positive_int
from cnnlab.errors import ConfigError
from cnnlab.plotting import image_grid, value_curves

MODES = ("untargeted", "targeted")
SOURCE_RANGES = ("input", "unit")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A preset's numbers, checked: the ascent (its `steps` the iterations of one mode), the starting noise
    N(init_mean, init_std), and the targeted penalty's weight and the range its source images are put in."""

    ascent: AscentSettings
    init_mean: float
    init_std: float
    beta: float
    source_range: str

    def start(self, count: int, shape: tuple[int, ...], seed: int) -> Tensor:
        """Seeded starting images in the ascent's pixel range."""
        lo, hi = self.ascent.lo, self.ascent.hi
        return noise(count, shape, mean=self.init_mean, std=self.init_std, lo=lo, hi=hi, seed=seed)

    def sources(self, images: Tensor) -> Tensor:
        """`images` (in [0, 1]) as the targeted penalty compares X with them: put in X's range ("input"), or left in
        [0, 1] ("unit": the report compared X in [0, 255] with sources in [0, 1])."""
        lo, hi = self.ascent.lo, self.ascent.hi
        return images if self.source_range == "unit" else lo + images * (hi - lo)


def check_preset(preset: Mapping[str, Any], mode: str) -> Preset:
    """The preset's numbers, validated; the ascent's `steps` are the iterations for `mode`."""
    name = "adversarial_preset"
    lo, hi = (finite_number(f"{name}.{k}", preset[k]) for k in ("lo", "hi"))
    if not lo < hi:
        raise ConfigError(f"{name}.lo={lo:g} must be below {name}.hi={hi:g}")
    iterations_key = "iterations" if mode == "untargeted" else "targeted_iterations"
    init_mean = finite_number(f"{name}.init_mean", preset["init_mean"])
    init_std = non_negative_float(f"{name}.init_std", preset["init_std"])
    step = positive_float(f"{name}.step", preset["step"])
    eps = positive_float(f"{name}.eps", preset["eps"])
    steps = positive_int(f"{name}.{iterations_key}", preset[iterations_key])
    return Preset(
        ascent=AscentSettings(steps=steps, step=step, eps=eps, lo=lo, hi=hi),
        init_mean=init_mean,
        init_std=init_std,
        beta=non_negative_float(f"{name}.beta", preset["beta"]),
        source_range=one_of(f"{name}.source_range", preset["source_range"], SOURCE_RANGES),
    )


def first_of_each_class(labels: Tensor, n_classes: int) -> Tensor:
    """Index of the first test image of every class, in class order."""
    firsts = [int(torch.nonzero(labels == c)[0]) if (labels == c).any() else -1 for c in range(n_classes)]
    if -1 in firsts:
        raise ConfigError(f"the test set has no image of class {firsts.index(-1)}")
    return torch.tensor(firsts, device=labels.device)


def to_unit(images: Tensor, lo: float, hi: float) -> Tensor:
    """Images from [lo, hi] to [0, 1], so MSEs compare across presets."""
    return (images - lo) / (hi - lo)


def untargeted(loaded: LoadedRun, p: Preset, seed: int) -> Outputs:
    classes, device = loaded.classes, loaded.device
    lo, hi = p.ascent.lo, p.ascent.hi
    n = len(classes)
    sources = loaded.test.x[first_of_each_class(loaded.test.y, n)]
    init = p.start(n, tuple(sources.shape[1:]), seed).to(device)
    targets = torch.arange(n, device=device)
    ascent = grow_untargeted(loaded.folded, init, targets, settings=p.ascent)
    predicted, confidence = predict(loaded.classifier, ascent.images)
    mse = mean_squared_error(to_unit(ascent.images, lo, hi), sources)
    table = [
        {
            "target": classes[c],
            "predicted": classes[int(predicted[c])],
            "confidence": float(confidence[c]),
            "final_logit": float(ascent.logits[-1, c]),
            "mse_to_first_test_image_of_target": float(mse[c]),
        }
        for c in range(n)
    ]
    titles = [f"target {r['target']}\npredicted {r['predicted']} ({r['confidence']:.0%})" for r in table]
    grid = image_grid(
        ascent.images[:, 0].cpu().numpy(),
        titles,
        ncols=5,
        value_range=(lo, hi),
        colorbar=True,
        cell=2.0,
        suptitle=f"untargeted images, pixels in [{lo:g}, {hi:g}]",
    )
    curves = value_curves(
        {f"target {classes[c]}": ascent.logits[:, c].cpu().numpy() for c in range(n)},
        "iteration",
        "logit of the target class",
        "untargeted ascent: target logit by iteration",
        ncols=2,
    )
    results = {
        "table": table,
        "all_predicted_as_target": all(r["predicted"] == r["target"] for r in table),
        "mean_mse_to_source": float(mse.mean()),
    }
    return Outputs(
        {"images.png": grid, "curves.png": curves},
        {"arrays.npz": arrays(ascent, init, targets, predicted, confidence)},
        results,
    )


def targeted(loaded: LoadedRun, p: Preset, seed: int) -> Outputs:
    classes, device = loaded.classes, loaded.device
    n = len(classes)
    first = loaded.test.x[first_of_each_class(loaded.test.y, n)]
    pairs = torch.tensor([(s, t) for s in range(n) for t in range(n) if t != s], device=device)
    src, targets = pairs[:, 0], pairs[:, 1]
    init = p.start(len(pairs), tuple(first.shape[1:]), seed).to(device)
    sources = p.sources(first)[src]
    ascent = grow_targeted(loaded.folded, init, targets, sources=sources, beta=p.beta, settings=p.ascent)
    predicted, confidence = predict(loaded.classifier, ascent.images)
    mse = mean_squared_error(to_unit(ascent.images, p.ascent.lo, p.ascent.hi), first[src])
    table = [
        {
            "source": classes[int(s)],
            "target": classes[int(t)],
            "predicted": classes[int(pr)],
            "confidence": float(c),
            "mse_to_source": float(m),
        }
        for s, t, pr, c, m in zip(src, targets, predicted, confidence, mse)
    ]
    titles = [f"looks {r['source']} / predicted {r['predicted']}\n({r['confidence']:.0%})" for r in table]
    grid = image_grid(
        ascent.images[:, 0].cpu().numpy(),
        titles,
        ncols=n - 1,
        value_range=(p.ascent.lo, p.ascent.hi),
        cell=1.5,
        suptitle="targeted images: row = source digit s, columns = targets t != s in order",
    )
    results = {
        "table": table,
        "success_rate": float((predicted == targets).float().mean()),
        "mean_mse_to_source": float(mse.mean()),
    }
    out_arrays = {**arrays(ascent, init, targets, predicted, confidence), "sources": src.cpu().numpy()}
    return Outputs({"images.png": grid}, {"arrays.npz": out_arrays}, results)


def arrays(
    ascent: Ascent, init: Tensor, targets: Tensor, predicted: Tensor, confidence: Tensor
) -> dict[str, np.ndarray]:
    return {
        "images": ascent.images.cpu().numpy(),
        "logits": ascent.logits.cpu().numpy(),
        "init": init.cpu().numpy(),
        "targets": targets.cpu().numpy(),
        "predicted": predicted.cpu().numpy(),
        "confidence": confidence.cpu().numpy(),
    }


@dataclass(frozen=True)
class Chosen:
    """The checked settings of one call: which images to grow, from which preset and seed."""

    mode: str
    preset: Preset
    seed: int


def check_adversarial_settings(settings: Mapping[str, Any]) -> tuple[Chosen, str]:
    """Mode, seed and preset, checked, and their folder name (mode and preset name)."""
    mode = one_of("mode", settings["mode"], MODES)
    seed = checks.seed("seed", settings["seed"])
    preset = check_preset(settings["adversarial_preset"], mode)
    return Chosen(mode, preset, seed), f"{mode}-{settings['adversarial_preset']['name']}"


def outputs(loaded: LoadedRun, chosen: Chosen) -> Outputs:
    grow = untargeted if chosen.mode == "untargeted" else targeted
    return grow(loaded, chosen.preset, chosen.seed)


adversarial = analysis("adversarial", check_adversarial_settings, outputs)


def format_table(summary: Mapping[str, Any]) -> str:
    """The per-image table of an adversarial summary as aligned text (what the command prints)."""
    rows = summary["table"]
    keys = list(rows[0])
    cells = [[f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
