"""Analysis comparisons: the report's one-at-a-time loops (`cnnlab.analysis.reference`) against cnnlab's batched
occlusion and input ascent, on a model with the report's Adam+BN architecture.

The model is seeded (no training: the work per call does not depend on the weights) and its batch-norm running
statistics come from real training images, so eval-mode batch norm is not the identity. Both sides get the same
model (cnnlab's as the analysis commands run it: `analysis_copy`, batch norm folded in and the first convolution's
input gradient taken as a matmul and a col2im), images and starting noise, and their outputs are compared, so a
speed-up cannot come from doing less work.

On a GPU (`device=cuda`) both sides run there with cuDNN's convolutions in full fp32 (`full_fp32_convolutions`): by
default torch rounds their inputs to TF32, and the folded and unfolded models would then differ by far more than the
tolerances below, which are float32's.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import torch
from captum.attr import Occlusion
from torch import Tensor, nn

from cnnlab.analysis.adversarial import Preset, check_preset, first_of_each_class
from cnnlab.analysis.ascent import grow_targeted, grow_untargeted
from cnnlab.analysis.attributions import occlusion_attribution
from cnnlab.analysis.occlusion import map_side, occlusion_maps
from cnnlab.analysis.reference import grow_targeted_reference, grow_untargeted_reference, occlusion_maps_reference
from cnnlab.analysis.results import merge_options
from cnnlab.bench.registry import BenchContext, register
from cnnlab.bench.timing import Comparison, interleaved
from cnnlab.bench.training import first_images, seeded_model
from cnnlab.data import Split, get_spec
from cnnlab.data.splits import read_raw, to_float
from cnnlab.device import full_fp32_convolutions
from cnnlab.models import analysis_copy

OCCLUSION_SIZE = 5
# Heatmaps are softmax probabilities in [0, 1]; the two sides differ only in float32 rounding of batch-1 against
# batched convolutions (~1e-7 relative per value), so 1e-5 absolute is far above rounding and far below any real change.
HEATMAP_ATOL = 1e-5
# Ascent images are pixels in [0, 1]; the same rounding differences pass through every step's gradient and compound
# (measured: 1.4e-4 to 1.7e-4 after 200 untargeted steps, 3e-5 to 2.9e-4 after 25 targeted ones, where beta=1000
# amplifies the penalty's share). 1e-3 is a quarter of one 8-bit grey level: the images are the same to the eye and
# when stored as 8-bit.
IMAGE_ATOL = 1e-3
CAPTUM_IMAGES = 10  # test images in the Captum occlusion comparison
BN_IMAGES = 512  # training images whose statistics become the model's running mean and variance


def analysis_models(ctx: BenchContext) -> tuple[nn.Module, nn.Module]:
    """The report's architecture with batch norm, in eval mode, running statistics from real training images: as
    trained (the report's side) and as the analyses compute with it (`analysis_copy`, cnnlab's side)."""
    model = seeded_model({**ctx.model, "batch_norm": True}, ctx.seed)
    model.train()
    with torch.no_grad():
        model(first_images(ctx, BN_IMAGES).x)
    # as cnnlab.analysis.loading.load_run runs it
    model = model.to(ctx.device, memory_format=torch.channels_last).eval()
    return model, analysis_copy(model)


def pixel_test_split(ctx: BenchContext) -> Split:
    """The test split in pixel units ([0, 1]), as the analyses see it, on the benchmark's device."""
    return to_float(read_raw(get_spec(ctx.data_name), ctx.data_root, train=False)).to(ctx.device)


def preset(mode: str, steps: int) -> Preset:
    """The analysis's default pixel range, step and penalty (`conf/adversarial.yaml`'s preset) for `steps` steps: the
    benchmark sets the steps, not the preset's iteration count."""
    p = check_preset(merge_options("adversarial", {})["adversarial_preset"], mode)
    return replace(p, ascent=replace(p.ascent, steps=steps))


def agreement(reference: list[Tensor], other: list[Tensor], atol: float) -> dict[str, Any]:
    """Every call's output (warm-up included) against the baseline's, within `atol`; compared on the CPU, since the
    report's occlusion loop fills a CPU tensor whatever the model's device."""
    deviation = max(float((a.cpu() - b.cpu()).abs().max()) for a, b in zip(reference, other, strict=True))
    return {"same": deviation <= atol, "max_abs_dev": deviation, "atol": atol}


def compare(
    name: str, unit_of_work: str, ctx: BenchContext, sides: dict[str, Any], atol: float, details: dict
) -> Comparison:
    with full_fp32_convolutions(ctx.device):
        timed = interleaved(sides, ctx.repeats, ctx.warmup, sync=ctx.synchronize)
    check = agreement(timed["report"].outputs, timed["cnnlab"].outputs, atol)
    return Comparison(
        name=name,
        unit="s",
        baseline=timed["report"].median,
        cnnlab=timed["cnnlab"].median,
        same_result=check.pop("same"),
        higher_is_better=False,
        target=">= 10x",
        details={
            "work": unit_of_work,
            "device": str(ctx.device),
            "threads": torch.get_num_threads(),
            "batch_norm": True,
            **details,
            **check,
        },
    )


@register("occlusion")
def occlusion_speed(ctx: BenchContext) -> list[Comparison]:
    """One test image, 5x5 patch at stride 1: a forward pass per position against cnnlab's batched maps."""
    settings = merge_options("occlusion", {})
    stride, fill, batch_size = settings["stride"], float(settings["fill"]), settings["batch_size"]
    (model, folded), test = analysis_models(ctx), pixel_test_split(ctx)
    image, label = test.x[:1], test.y[:1]
    patch = {"size": OCCLUSION_SIZE, "stride": stride, "fill": fill}
    sides = {
        "report": lambda: occlusion_maps_reference(model, image[0], int(label[0]), **patch),
        "cnnlab": lambda: occlusion_maps(folded, image, label, **patch, batch_size=batch_size)[0],
    }
    positions = map_side(image.shape[-1], OCCLUSION_SIZE, stride) ** 2
    details = {**patch, "positions": positions, "batch_size": batch_size}
    return [compare("occlusion, 1 image, 5x5", f"one map of {positions} positions", ctx, sides, HEATMAP_ATOL, details)]


@register("untargeted")
def untargeted_speed(ctx: BenchContext) -> list[Comparison]:
    """One image per class grown for `untargeted_steps`: class after class with parameter gradients against cnnlab."""
    steps = ctx.untargeted_steps
    p, (model, folded) = preset("untargeted", steps), analysis_models(ctx)
    n = len(get_spec(ctx.data_name).classes)
    init, targets = p.start(n, (1, 28, 28), ctx.seed).to(ctx.device), torch.arange(n, device=ctx.device)
    sides = {
        "report": lambda: torch.stack(
            [grow_untargeted_reference(model, init[c], c, settings=p.ascent)[0] for c in range(n)]
        ),
        "cnnlab": lambda: grow_untargeted(folded, init, targets, settings=p.ascent).images,
    }
    details = {"images": n, "steps": steps, "preset": asdict(p)}
    return [compare(f"untargeted, {n} classes x {steps} steps", f"{n} images", ctx, sides, IMAGE_ATOL, details)]


@register("targeted")
def targeted_speed(ctx: BenchContext) -> list[Comparison]:
    """Every (source, target != source) pair grown for `targeted_steps` near the first test image of its source."""
    steps = ctx.targeted_steps
    p, (model, folded) = preset("targeted", steps), analysis_models(ctx)
    test = pixel_test_split(ctx)
    n = len(get_spec(ctx.data_name).classes)
    first = test.x[first_of_each_class(test.y, n)]
    pairs = torch.tensor([(s, t) for s in range(n) for t in range(n) if t != s], device=ctx.device)
    sources, targets = p.sources(first)[pairs[:, 0]], pairs[:, 1]
    init = p.start(len(pairs), (1, 28, 28), ctx.seed).to(ctx.device)
    sides = {
        "report": lambda: torch.stack(
            [
                grow_targeted_reference(
                    model, init[i], int(targets[i]), source=sources[i], beta=p.beta, settings=p.ascent
                )[0]
                for i in range(len(pairs))
            ]
        ),
        "cnnlab": lambda: grow_targeted(folded, init, targets, sources=sources, beta=p.beta, settings=p.ascent).images,
    }
    details = {"images": len(pairs), "steps": steps, "preset": asdict(p)}
    name = f"targeted, {len(pairs)} pairs x {steps} steps"
    return [compare(name, f"{len(pairs)} images", ctx, sides, IMAGE_ATOL, details)]


@register("captum_occlusion")
def captum_occlusion_speed(ctx: BenchContext) -> list[Comparison]:
    """Ten test images, 5x5 patch at stride 1: Captum's Occlusion against cnnlab's batched maps turned into the same
    per-pixel attributions (`occlusion_attribution`); cnnlab-occlusion keeps its own maps only while this is >= 3x."""
    settings = merge_options("occlusion", {})
    stride, fill, batch_size = settings["stride"], float(settings["fill"]), settings["batch_size"]
    (model, folded), test = analysis_models(ctx), pixel_test_split(ctx)
    images, labels = test.x[:CAPTUM_IMAGES], test.y[:CAPTUM_IMAGES]
    window, side = (1, OCCLUSION_SIZE, OCCLUSION_SIZE), images.shape[-1]

    def ours() -> Tensor:
        maps = occlusion_maps(
            folded, images, labels, size=OCCLUSION_SIZE, stride=stride, fill=fill, batch_size=batch_size
        )
        with torch.no_grad():
            clean = folded(images).softmax(dim=1).gather(1, labels[:, None])[:, 0]
        return occlusion_attribution(maps, clean, OCCLUSION_SIZE, stride, side)

    def captum() -> Tensor:
        occlusion = Occlusion(lambda x: model(x).softmax(dim=1))
        return occlusion.attribute(
            images,
            window,
            strides=(1, stride, stride),
            baselines=fill,
            target=labels,
            perturbations_per_eval=batch_size,
        )

    positions = map_side(side, OCCLUSION_SIZE, stride) ** 2
    details = {"size": OCCLUSION_SIZE, "stride": stride, "fill": fill, "images": CAPTUM_IMAGES, "positions": positions}
    work = f"{CAPTUM_IMAGES} images x {positions} positions"
    comparison = compare(
        "occlusion vs Captum, 10 images, 5x5", work, ctx, {"report": captum, "cnnlab": ours}, HEATMAP_ATOL, details
    )
    return [replace(comparison, target=">= 3x (else Captum's Occlusion replaces cnnlab's)")]
