"""Batch norm folded into the layer before it, for the analyses: eval mode only, the same function up to rounding."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from cnnlab.models.input_gradient import fast_input_gradient


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose every batch norm that follows a conv or linear layer in an `nn.Sequential` is folded
    into that layer (and replaced by an identity), whatever the model's class.

    In eval mode batch norm is a fixed per-channel affine map, so the folded layer computes the same outputs; the
    analyses' forward and input-gradient passes then skip a batch norm and its backward per block. The parameter
    layout changes, so the copy is for computing, not for saving or for reading the learned filters.
    """
    folded = copy.deepcopy(model).eval()
    for block in (m for m in folded.modules() if isinstance(m, nn.Sequential)):
        for i in range(1, len(block)):
            layer, norm = block[i - 1], block[i]
            if isinstance(norm, nn.BatchNorm2d) and isinstance(layer, nn.Conv2d):
                block[i - 1], block[i] = fuse_conv_bn_eval(layer, norm), nn.Identity()
            elif isinstance(norm, nn.BatchNorm1d) and isinstance(layer, nn.Linear):
                block[i - 1], block[i] = fuse_linear_bn_eval(layer, norm), nn.Identity()
    return folded


def analysis_copy(model: nn.Module) -> nn.Module:
    """What the analyses compute with: an eval-mode copy with batch norm folded (`fold_batch_norm`) whose first
    convolution back-propagates to the input faster on a CPU (`fast_input_gradient`)."""
    return fast_input_gradient(fold_batch_norm(model))
