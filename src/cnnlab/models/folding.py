"""Batch norm folded into the layer before it, for the analyses: eval mode only, the same function up to rounding."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from cnnlab.models.input_gradient import fast_input_gradient
from cnnlab.models.simple_cnn import SimpleCNN


def fold_batch_norm(model: SimpleCNN) -> SimpleCNN:
    """An eval-mode copy whose every batch norm is folded into the conv or linear layer before it (and replaced by an
    identity).

    In eval mode batch norm is a fixed per-channel affine map, so the folded layer computes the same outputs; the
    analyses' forward and input-gradient passes then skip a batch norm and its backward per block. The parameter
    layout changes, so the copy is for computing, not for saving or for reading the learned filters.
    """
    folded = copy.deepcopy(model).eval()
    for block in (folded.conv_block, folded.fc_block):
        for i in range(1, len(block)):
            layer, norm = block[i - 1], block[i]
            if isinstance(norm, nn.BatchNorm2d) and isinstance(layer, nn.Conv2d):
                block[i - 1], block[i] = fuse_conv_bn_eval(layer, norm), nn.Identity()
            elif isinstance(norm, nn.BatchNorm1d) and isinstance(layer, nn.Linear):
                block[i - 1], block[i] = fuse_linear_bn_eval(layer, norm), nn.Identity()
    return folded


def analysis_copy(model: SimpleCNN) -> nn.Module:
    """What the analyses compute with: an eval-mode copy with batch norm folded (`fold_batch_norm`) whose first
    convolution back-propagates to the input faster on a CPU (`fast_input_gradient`)."""
    return fast_input_gradient(fold_batch_norm(model))
