"""The analyses' core algorithms on tensors: occlusion geometry and orientation, input ascent, and agreement with the
slow one-at-a-time reference implementations."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import Normalize

from cnnlab.analysis.activations import feature_maps
from cnnlab.analysis.ascent import AscentSettings, grow_targeted, grow_untargeted, noise
from cnnlab.analysis.occluders import FullForward, Incremental, occluder
from cnnlab.analysis.occlusion import occlusion_maps
from cnnlab.analysis.reference import grow_targeted_reference, grow_untargeted_reference, occlusion_maps_reference
from cnnlab.models import SimpleCNN, analysis_copy, fold_batch_norm

UNIT_4_STEPS = AscentSettings(steps=4, step=0.05, eps=0.3, lo=0.0, hi=1.0)  # pixels in [0, 1], as trained
ROWS, COLS = slice(2, 6), slice(19, 25)  # a region in the top-right corner: a transposed map would show it bottom-left


class RegionModel(nn.Module):
    """Class 0's logit is the sum of the pixels in one known region (less an offset); class 1's is 0."""

    def forward(self, x):
        score = x[:, 0, ROWS, COLS].sum(dim=(1, 2)) - 12.0
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def random_cnn(seed=0, batch_norm=True):
    torch.manual_seed(seed)
    model = SimpleCNN(batch_norm=batch_norm)
    if batch_norm:  # non-trivial running statistics, so eval mode differs from train mode
        model.train()
        with torch.no_grad():
            model(torch.rand(64, 1, 28, 28))
    return model.eval()


def test_occlusion_map_dips_exactly_over_the_region_the_model_reads():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(0.2, 1.0, (1, 1, 28, 28))).float()  # asymmetric, every pixel > 0
    size = 3
    heat = occlusion_maps(RegionModel(), image, torch.tensor([0]), size=size, stride=1, fill=0.0)[0]
    expected = np.empty((26, 26))
    for i in range(26):
        for j in range(26):
            covered = image[0, 0].clone()
            covered[i : i + size, j : j + size] = 0
            expected[i, j] = torch.sigmoid(covered[ROWS, COLS].sum() - 12.0)
    np.testing.assert_allclose(heat.numpy(), expected, rtol=1e-5)
    # the map is lower exactly where the patch overlaps rows 2..5 and columns 19..24, and flat elsewhere
    overlaps = np.zeros((26, 26), dtype=bool)
    overlaps[ROWS.start - size + 1 : ROWS.stop, COLS.start - size + 1 : COLS.stop] = True
    full = float(torch.sigmoid(image[0, 0, ROWS, COLS].sum() - 12.0))
    assert np.all(heat.numpy()[overlaps] < full) and np.allclose(heat.numpy()[~overlaps], full)
    i, j = np.unravel_index(heat.numpy().argmin(), heat.shape)
    assert i < 6 and j > 16  # top-right, like the region


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [1, 3, 5, 7, 14, 28])
def test_map_size_is_every_placement_inside_the_image(size, stride):
    images = torch.rand(2, 1, 28, 28)
    heat = occlusion_maps(
        RegionModel(), images, torch.tensor([0, 1]), size=size, stride=stride, fill=0.5, batch_size=100
    )
    side = (28 - size) // stride + 1
    assert heat.shape == (2, side, side)
    assert torch.all((heat >= 0) & (heat <= 1))


def test_full_forward_occlusion_of_any_model_agrees_with_the_reference_across_images():
    """A model that is not a bare SimpleCNN takes every occluded copy through the whole network; batches span images."""
    classifier = nn.Sequential(nn.Identity(), random_cnn()).eval()
    images, labels = torch.rand(3, 1, 28, 28), torch.tensor([3, 1, 7])
    assert type(occluder(classifier, images, labels, 5, 0.5)) is FullForward
    fast = occlusion_maps(classifier, images, labels, size=5, stride=3, fill=0.5, batch_size=37)
    for n in range(3):
        slow = occlusion_maps_reference(classifier, images[n], int(labels[n]), size=5, stride=3, fill=0.5)
        torch.testing.assert_close(fast[n], slow, rtol=1e-4, atol=1e-6)


def test_occlusion_on_the_folded_model_is_the_trained_models_map():
    """What the command runs (batch norm folded, incremental) against the reference on the model as trained."""
    model = random_cnn(3).to(memory_format=torch.channels_last)
    images, labels = torch.rand(2, 1, 28, 28), torch.tensor([0, 5])
    fast = occlusion_maps(fold_batch_norm(model), images, labels, size=5, stride=1, fill=0.5)
    for n in range(2):
        slow = occlusion_maps_reference(model, images[n], int(labels[n]), size=5, stride=1, fill=0.5)
        torch.testing.assert_close(fast[n], slow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(
    ("size", "stride", "batch_size"),
    [(1, 1, 100), (2, 3, 7), (5, 1, 37), (5, 1, 1024), (7, 2, 50), (14, 1, 64), (27, 1, 3), (28, 1, 1)],
)
def test_incremental_occlusion_of_a_simple_cnn_is_the_full_forward_pass(
    normalize, batch_norm, size, stride, batch_size
):
    """Recomputing only the windows a patch changes gives every position's probability, at image borders, for
    batches that split rows unevenly (so a batch's windows differ in rows and columns), with and without BN."""
    model = random_cnn(2, batch_norm).to(memory_format=torch.channels_last)
    classifier = nn.Sequential(Normalize((0.13,), (0.31,)), model).eval() if normalize else model
    images, labels = torch.rand(2, 1, 28, 28), torch.tensor([3, 8])
    assert isinstance(occluder(classifier, images, labels, size, 0.5), Incremental)
    fast = occlusion_maps(classifier, images, labels, size=size, stride=stride, fill=0.5, batch_size=batch_size)
    for n in range(2):
        slow = occlusion_maps_reference(classifier, images[n], int(labels[n]), size=size, stride=stride, fill=0.5)
        torch.testing.assert_close(fast[n], slow, rtol=1e-4, atol=1e-6)


def test_batched_untargeted_ascent_agrees_with_the_one_image_reference():
    model = random_cnn(1)
    init = noise(3, (1, 28, 28), mean=0.5, std=0.1, lo=0.0, hi=1.0, seed=3)
    targets = torch.tensor([4, 0, 9])
    # as the analyses run it: batch norm folded, the first convolution's input gradient as a matmul and a col2im
    fast = grow_untargeted(analysis_copy(model), init, targets, settings=UNIT_4_STEPS)
    for n in range(3):
        image, curve = grow_untargeted_reference(model, init[n], int(targets[n]), settings=UNIT_4_STEPS)
        torch.testing.assert_close(fast.images[n], image, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.logits[:, n], curve, rtol=1e-4, atol=1e-4)


def test_batched_targeted_ascent_agrees_with_the_one_image_reference():
    model = random_cnn(2)
    init = noise(2, (1, 28, 28), mean=0.5, std=0.1, lo=0.0, hi=1.0, seed=4)
    sources, targets = torch.rand(2, 1, 28, 28), torch.tensor([2, 5])
    fast = grow_targeted(analysis_copy(model), init, targets, sources=sources, beta=50.0, settings=UNIT_4_STEPS)
    for n in range(2):
        image, _ = grow_targeted_reference(
            model, init[n], int(targets[n]), source=sources[n], beta=50.0, settings=UNIT_4_STEPS
        )
        torch.testing.assert_close(fast.images[n], image, rtol=1e-4, atol=1e-5)


def test_untargeted_logits_rise_images_stay_in_range_and_parameters_get_no_gradient():
    model = random_cnn(3)
    init = noise(10, (1, 28, 28), mean=128.0, std=1.0, lo=0.0, hi=255.0, seed=0)
    settings = AscentSettings(steps=25, step=5.0, eps=0.3, lo=0.0, hi=255.0)
    ascent = grow_untargeted(model, init, torch.arange(10), settings=settings)
    assert torch.all(ascent.logits[-1] > ascent.logits[0])
    assert ascent.images.min() >= 0.0 and ascent.images.max() <= 255.0
    assert not torch.equal(ascent.images, init)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    settings = AscentSettings(steps=5, step=100.0, eps=0.3, lo=0.0, hi=1.0)
    clamped = grow_untargeted(model, torch.full((2, 1, 28, 28), 0.99), torch.tensor([0, 1]), settings=settings)
    assert clamped.images.min() >= 0.0 and clamped.images.max() <= 1.0


def test_ascent_restores_training_mode_and_same_seed_gives_the_same_start():
    def start(count, seed):
        return noise(count, (1, 28, 28), mean=0.5, std=0.1, lo=0, hi=1, seed=seed)

    model = random_cnn(4).train()
    grow_untargeted(model, start(2, seed=0), torch.tensor([0, 1]), settings=replace(UNIT_4_STEPS, steps=2))
    assert model.training
    assert torch.equal(start(5, seed=7), start(5, seed=7))
    assert not torch.equal(start(5, seed=7), start(5, seed=8))


def test_feature_maps_are_the_layer_output_and_leave_the_model_as_it_was():
    model = random_cnn(5).train()
    image = torch.rand(1, 28, 28)
    maps = feature_maps(model, model.layer("conv2"), image)
    model.eval()
    expected = model.conv_block[:5](image[None])[0]  # conv1, BN, pool, ReLU, conv2
    torch.testing.assert_close(maps, expected)
    assert maps.shape == (32, 14, 14)
    model.train()
    feature_maps(model, model.layer("conv1"), image)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
