"""A faster input gradient through the first convolution, for the analyses that differentiate a frozen model with
respect to its input (the adversarial ascent).

oneDNN's backward-data kernel is slow when the convolution's input has a single channel, as MNIST's first layer
(1 -> 32 channels, 3x3) has: the same gradient as one matrix product (each output position's gradient spread over
the 3x3 taps) and a col2im (`F.fold`) that sums the taps back into the image is faster on the CPUs
measured (docs/performance.md). Both compute the same sums, in another order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _ConvInputGrad(torch.autograd.Function):
    """conv2d (stride 1, no dilation, one group) whose backward returns the input's gradient only."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, _, padding = inputs
        ctx.save_for_backward(weight)
        ctx.image_size, ctx.padding = tuple(x.shape[-2:]), padding

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        # only used while the weight and bias are frozen (InputGradConv2d), so the input's is the only gradient
        (weight,) = ctx.saved_tensors
        # [C_in * kh * kw, C_out] @ [N, C_out, H_out * W_out]: every output position's gradient on each tap it read;
        # under autocast the gradient arrives in the lower precision and is taken back to the weight's
        columns = weight.flatten(1).t() @ grad.to(weight.dtype).flatten(2)
        return F.fold(columns, ctx.image_size, weight.shape[-2:], padding=ctx.padding), None, None, None


class InputGradConv2d(nn.Conv2d):
    """An `nn.Conv2d` that, once frozen, back-propagates to its input through `_ConvInputGrad` on the CPU.

    While a parameter needs a gradient, on another device (the slow kernel is oneDNN's) or for an unbatched image, it
    is a plain Conv2d. Code that looks layers up by exact type (`type(m) is nn.Conv2d`) no longer sees it: use
    `isinstance`.
    """

    def forward(self, x: Tensor) -> Tensor:
        if any(p.requires_grad for p in self.parameters()) or x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        return _ConvInputGrad.apply(x, self.weight, self.bias, self.padding)


def _qualifies(module: nn.Module) -> bool:
    """A plain single-input-channel conv whose gradient `F.fold` can spread back: stride 1, no dilation, zero padding
    given in pixels (not 'same' or 'valid', which leave `padding` a string)."""
    return (
        type(module) is nn.Conv2d
        and module.in_channels == 1
        and module.stride == (1, 1)
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
    )


def _input_grad_copy(conv: nn.Conv2d) -> InputGradConv2d:
    """An InputGradConv2d sharing `conv`'s parameters (the same tensors, so memory format and training state stay)."""
    out = InputGradConv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=conv.bias is not None
    )
    out.weight, out.bias = conv.weight, conv.bias
    return out.train(conv.training)


def fast_input_gradient(model: nn.Module) -> nn.Module:
    """`model` with each single-input-channel convolution (stride 1, as SimpleCNN's first) replaced, in its parent, by
    an `InputGradConv2d` that shares its parameters: state-dict keys and weights stay as they are, and any model
    built from `nn.Conv2d` gets the fast path without knowing of it."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _qualifies(child):
                setattr(parent, name, _input_grad_copy(child))
    return model
